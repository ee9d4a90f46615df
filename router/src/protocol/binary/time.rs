//! Date and time types from the text PostgreSQL writes with `DateStyle=ISO`
//! and `IntervalStyle=postgres` (the proxy's assumptions): `date`,
//! `timestamp`, `timestamptz`, `time`, `timetz` and `interval`, `BC` years
//! and `±infinity` included. Other styles' text is refused (`None`).

use shard_config::time::{days_from_civil, days_in_month, MICROS_PER_DAY};

/// PostgreSQL's epoch (2000-01-01) in days since 1970-01-01.
const PG_EPOCH_DAYS: i64 = 10_957;
/// Microseconds in a second.
const MICROS: i64 = 1_000_000;

/// A byte reader for the text of one value.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    /// Consumes `b` if it comes next.
    fn eat(&mut self, b: u8) -> bool {
        match self.0.split_first() {
            Some((&first, rest)) if first == b => {
                self.0 = rest;
                true
            }
            _ => false,
        }
    }

    /// Consumes `b`, or fails.
    fn expect(&mut self, b: u8) -> Option<()> {
        self.eat(b).then_some(())
    }

    /// Consumes `suffix` if the text ends with it (and only then).
    fn eat_suffix(&mut self, suffix: &[u8]) -> bool {
        match self.0.strip_suffix(suffix) {
            Some(rest) => {
                self.0 = rest;
                true
            }
            None => false,
        }
    }

    /// Between `min` and `max` ASCII digits as a number.
    fn digits(&mut self, min: usize, max: usize) -> Option<i64> {
        let n = self.0.iter().take_while(|b| b.is_ascii_digit()).count();
        if n < min || n > max {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head.iter().try_fold(0i64, |acc, b| {
            acc.checked_mul(10)?.checked_add(i64::from(b - b'0'))
        })
    }

    /// `MM:SS[.ffffff]` (after the hours and their colon) as microseconds;
    /// minutes and seconds below 60.
    fn minutes_seconds(&mut self) -> Option<i64> {
        let m = self.digits(2, 2)?;
        self.expect(b':')?;
        let s = self.digits(2, 2)?;
        let mut frac = 0;
        if self.eat(b'.') {
            let n = self.0.iter().take_while(|b| b.is_ascii_digit()).count();
            let digits = self.digits(1, 6)?;
            frac = digits * 10i64.pow(6 - n as u32);
        }
        if m > 59 || s > 59 {
            return None;
        }
        Some((m * 60 + s) * MICROS + frac)
    }

    /// A time of day `HH:MM:SS[.ffffff]` as microseconds (up to `24:00:00`).
    fn time_of_day(&mut self) -> Option<i64> {
        let h = self.digits(2, 2)?;
        self.expect(b':')?;
        let rest = self.minutes_seconds()?;
        if h > 24 || h == 24 && rest != 0 {
            return None;
        }
        Some(h * 3600 * MICROS + rest)
    }

    /// A zone offset `±HH[:MM[:SS]]` as seconds east of UTC.
    fn offset(&mut self) -> Option<i64> {
        let sign = if self.eat(b'+') {
            1
        } else {
            self.expect(b'-')?;
            -1
        };
        let h = self.digits(2, 2)?;
        let mut secs = h * 3600;
        for scale in [60, 1] {
            if !self.eat(b':') {
                break;
            }
            let v = self.digits(2, 2)?;
            if v > 59 {
                return None;
            }
            secs += v * scale;
        }
        Some(sign * secs)
    }

    /// `YYYY-MM-DD` as `(year, month, day)`, the year as written (1 and up).
    fn ymd(&mut self) -> Option<(i64, u32, u32)> {
        let year = self.digits(4, 7)?;
        self.expect(b'-')?;
        let month = u32::try_from(self.digits(2, 2)?).ok()?;
        self.expect(b'-')?;
        let day = u32::try_from(self.digits(2, 2)?).ok()?;
        (year >= 1).then_some((year, month, day))
    }
}

/// Days since 2000-01-01 of a written date; `bc` years count back from
/// 1 BC (year 0).
fn pg_days((year, month, day): (i64, u32, u32), bc: bool) -> Option<i64> {
    let year = if bc { 1 - year } else { year };
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    Some(days_from_civil(year, month, day) - PG_EPOCH_DAYS)
}

/// `date`: an `int32` of days since 2000-01-01.
pub(super) fn date(text: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let days = match text {
        b"infinity" => i32::MAX,
        b"-infinity" => i32::MIN,
        _ => {
            let mut c = Cursor(text);
            let bc = c.eat_suffix(b" BC");
            let ymd = c.ymd()?;
            if !c.0.is_empty() {
                return None;
            }
            i32::try_from(pg_days(ymd, bc)?).ok()?
        }
    };
    out.extend_from_slice(&days.to_be_bytes());
    Some(())
}

/// `timestamp` (`with_zone` false) or `timestamptz`: an `int64` of
/// microseconds since 2000-01-01 00:00 (UTC for `timestamptz`).
pub(super) fn timestamp(text: &[u8], with_zone: bool, out: &mut Vec<u8>) -> Option<()> {
    let micros = match text {
        b"infinity" => i64::MAX,
        b"-infinity" => i64::MIN,
        _ => {
            let mut c = Cursor(text);
            let bc = c.eat_suffix(b" BC");
            let ymd = c.ymd()?;
            c.expect(b' ')?;
            let time = c.time_of_day()?;
            let offset = if with_zone { c.offset()? } else { 0 };
            if !c.0.is_empty() {
                return None;
            }
            pg_days(ymd, bc)?
                .checked_mul(MICROS_PER_DAY)?
                .checked_add(time)?
                .checked_sub(offset * MICROS)?
        }
    };
    out.extend_from_slice(&micros.to_be_bytes());
    Some(())
}

/// `time`: an `int64` of microseconds since midnight.
pub(super) fn time(text: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let mut c = Cursor(text);
    let micros = c.time_of_day()?;
    if !c.0.is_empty() {
        return None;
    }
    out.extend_from_slice(&micros.to_be_bytes());
    Some(())
}

/// `timetz`: the `time` then an `int32` zone in seconds WEST of UTC (the
/// text's offset negated).
pub(super) fn timetz(text: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let mut c = Cursor(text);
    let micros = c.time_of_day()?;
    let zone = i32::try_from(-c.offset()?).ok()?;
    if !c.0.is_empty() {
        return None;
    }
    out.extend_from_slice(&micros.to_be_bytes());
    out.extend_from_slice(&zone.to_be_bytes());
    Some(())
}

/// The time part of an interval: `[±]HH:MM:SS[.ffffff]`, hours unbounded.
fn interval_time(word: &[u8]) -> Option<i64> {
    let mut c = Cursor(word);
    let negative = !c.eat(b'+') && c.eat(b'-');
    let h = c.digits(2, 19)?;
    c.expect(b':')?;
    let rest = c.minutes_seconds()?;
    if !c.0.is_empty() {
        return None;
    }
    let micros = i128::from(h) * i128::from(3600 * MICROS) + i128::from(rest);
    i64::try_from(if negative { -micros } else { micros }).ok()
}

/// `interval` in `IntervalStyle=postgres` text (`1 year 2 mons -3 days
/// +04:05:06.789`, `00:00:00`) as `interval_send` writes it: an `int64` of
/// microseconds, an `int32` of days, an `int32` of months. Each part at
/// most once and in that order; any other style is refused.
pub(super) fn interval(text: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let (micros, days, months) = match text {
        // PostgreSQL 17's infinite intervals
        b"infinity" => (i64::MAX, i32::MAX, i32::MAX),
        b"-infinity" => (i64::MIN, i32::MIN, i32::MIN),
        _ => {
            let (mut micros, mut days, mut months) = (0i64, 0i64, 0i64);
            let mut stage = 0;
            let mut words = text.split(|&b| b == b' ');
            while let Some(word) = words.next() {
                if word.contains(&b':') {
                    if stage >= 4 {
                        return None;
                    }
                    stage = 4;
                    micros = interval_time(word)?;
                    continue;
                }
                let n: i64 = std::str::from_utf8(word).ok()?.parse().ok()?;
                let (rank, field, scale) = match words.next()? {
                    b"year" | b"years" => (1, &mut months, 12),
                    b"mon" | b"mons" => (2, &mut months, 1),
                    b"day" | b"days" => (3, &mut days, 1),
                    _ => return None,
                };
                if rank <= stage {
                    return None;
                }
                stage = rank;
                *field = field.checked_add(n.checked_mul(scale)?)?;
            }
            if stage == 0 {
                return None;
            }
            (
                micros,
                i32::try_from(days).ok()?,
                i32::try_from(months).ok()?,
            )
        }
    };
    out.extend_from_slice(&micros.to_be_bytes());
    out.extend_from_slice(&days.to_be_bytes());
    out.extend_from_slice(&months.to_be_bytes());
    Some(())
}
