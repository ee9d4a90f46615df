//! Time keys of the `time` algorithm: civil-date math, PostgreSQL text and binary
//! input, and the [`Interval`]s that cut time into shards' pieces.
//!
//! A time key is an `i64` count of microseconds since 1970-01-01 00:00 UTC: a
//! `date` is its midnight UTC, a `timestamp` its wall-clock time read as UTC, a
//! `timestamptz` the instant. Intervals of `timestamptz` keys are therefore cut at
//! UTC midnight, whatever the session's `TimeZone`.
//!
//! ```
//! use shard_config::time::{parse_time_text, time_from_binary, Interval};
//! use shard_config::KeyType;
//!
//! let t = parse_time_text("2026-11-05 10:00:00+01", KeyType::Timestamptz).unwrap();
//! assert_eq!(t, parse_time_text("2026-11-05T09:00:00Z", KeyType::Timestamptz).unwrap());
//! let binary = (t - 946_684_800_000_000).to_be_bytes();
//! assert_eq!(time_from_binary(&binary, KeyType::Timestamptz), Some(t));
//! assert_eq!(Interval::Month.suffix(Interval::Month.index(t)), "2026_11");
//! ```

use std::fmt;

use crate::key_type::KeyType;

/// Microseconds in a day.
pub const MICROS_PER_DAY: i64 = 86_400_000_000;
/// PostgreSQL's epoch, 2000-01-01 00:00 UTC, in microseconds since the Unix epoch.
pub const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// PostgreSQL's epoch in days since the Unix epoch.
const PG_EPOCH_DAYS: i64 = 10_957;

/// Days since 1970-01-01 of the proleptic Gregorian date `year-month-day`
/// (`month` 1..=12, `day` 1..=31; not range-checked).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let (m, d) = (i64::from(month), i64::from(day));
    let y = if m <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date `(year, month, day)` of `days` since 1970-01-01 (the inverse of
/// [`days_from_civil`]; exact for `|days|` up to about 10^15).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days.saturating_add(719_468);
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // month is 1..=12 and day 1..=31 by construction.
    (year, month as u32, day as u32)
}

/// Whether `year` is a Gregorian leap year.
pub fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// Days in `month` (1..=12) of `year`; 0 for a month out of range.
pub fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// The date of a time key as `YYYY-MM-DD` (its UTC day).
pub fn format_date(micros: i64) -> String {
    let (y, m, d) = civil_from_days(micros.div_euclid(MICROS_PER_DAY));
    format!("{y:04}-{m:02}-{d:02}")
}

/// How long one piece of a `time` table is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Interval {
    /// One UTC day (suffix `2026_11_05`).
    Day,
    /// One calendar month (suffix `2026_11`).
    Month,
    /// One calendar year (suffix `2026`).
    Year,
}

impl Interval {
    /// Every spelling `interval` accepts.
    pub const NAMES: &'static [&'static str] = &["day", "month", "year"];

    /// Parses an `interval` value: `day`, `month` or `year`.
    pub fn parse(name: &str) -> Option<Interval> {
        match name {
            "day" => Some(Interval::Day),
            "month" => Some(Interval::Month),
            "year" => Some(Interval::Year),
            _ => None,
        }
    }

    /// The name as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Interval::Day => "day",
            Interval::Month => "month",
            Interval::Year => "year",
        }
    }

    /// The number of the interval holding `micros`, counted from the one holding
    /// 1970-01-01 (0); negative before it.
    pub fn index(self, micros: i64) -> i64 {
        let days = micros.div_euclid(MICROS_PER_DAY);
        if self == Interval::Day {
            return days;
        }
        let (y, m, _) = civil_from_days(days);
        match self {
            Interval::Year => y - 1970,
            _ => (y - 1970) * 12 + i64::from(m) - 1,
        }
    }

    /// The first microsecond of interval number `index` (`None` past the `i64` range).
    pub fn start(self, index: i64) -> Option<i64> {
        let days = match self {
            Interval::Day => index,
            Interval::Month => {
                let y = index.div_euclid(12).checked_add(1970)?;
                let m = u32::try_from(index.rem_euclid(12)).ok()? + 1;
                days_from_civil(y, m, 1)
            }
            Interval::Year => days_from_civil(index.checked_add(1970)?, 1, 1),
        };
        days.checked_mul(MICROS_PER_DAY)
    }

    /// Whether `micros` is the first microsecond of an interval.
    pub fn is_boundary(self, micros: i64) -> bool {
        self.start(self.index(micros)) == Some(micros)
    }

    /// The table suffix of interval number `index`: `2026_11_05`, `2026_11` or `2026`.
    pub fn suffix(self, index: i64) -> String {
        match self {
            Interval::Day => {
                let (y, m, d) = civil_from_days(index);
                format!("{y:04}_{m:02}_{d:02}")
            }
            Interval::Month => {
                let y = index.div_euclid(12) + 1970;
                let m = index.rem_euclid(12) + 1;
                format!("{y:04}_{m:02}")
            }
            Interval::Year => format!("{:04}", index + 1970),
        }
    }

    /// The interval number a table suffix names (the inverse of [`Interval::suffix`]):
    /// exactly `YYYY_MM_DD`, `YYYY_MM` or `YYYY` with a real date.
    pub fn parse_suffix(self, suffix: &str) -> Option<i64> {
        let parts: Vec<&str> = suffix.split('_').collect();
        let want = match self {
            Interval::Day => 3,
            Interval::Month => 2,
            Interval::Year => 1,
        };
        let widths = [4, 2, 2];
        if parts.len() != want
            || parts
                .iter()
                .zip(widths)
                .any(|(p, w)| p.len() != w || !p.bytes().all(|b| b.is_ascii_digit()))
        {
            return None;
        }
        let year: i64 = parts[0].parse().ok()?;
        let month: u32 = parts.get(1).map_or(Some(1), |p| p.parse().ok())?;
        let day: u32 = parts.get(2).map_or(Some(1), |p| p.parse().ok())?;
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return None;
        }
        let micros = days_from_civil(year, month, day).checked_mul(MICROS_PER_DAY)?;
        Some(self.index(micros))
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A time key written as text, in the ISO forms PostgreSQL accepts:
/// `2026-11-05`, `2026-11-05 10:00[:00[.123456]]`, `T` instead of the space, and an
/// optional offset `Z`, `UTC`, `+01`, `+01:00`, `-0530` (after optional spaces).
///
/// `timestamptz` applies the offset (none means UTC), `timestamp` ignores it as
/// PostgreSQL does, `date` ignores the time of day. `infinity`, `-infinity`,
/// other forms, impossible dates and non-time `key_type`s give `None`.
pub fn parse_time_text(text: &str, key_type: KeyType) -> Option<i64> {
    if !key_type.is_time() {
        return None;
    }
    let mut p = Cursor(text.trim().as_bytes());
    let year = p.digits(4, 6)?;
    p.expect(b'-')?;
    let month = u32::try_from(p.digits(2, 2)?).ok()?;
    p.expect(b'-')?;
    let day = u32::try_from(p.digits(2, 2)?).ok()?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let date = days_from_civil(year, month, day) * MICROS_PER_DAY;
    if p.0.is_empty() {
        return Some(date);
    }
    p.eat(b'T')
        .or_else(|| p.eat(b't'))
        .or_else(|| p.eat(b' '))?;
    let time = p.time_of_day()?;
    p.spaces();
    let offset = if p.0.is_empty() { 0 } else { p.offset()? };
    if !p.0.is_empty() {
        return None;
    }
    match key_type {
        KeyType::Date => Some(date),
        KeyType::Timestamp => date.checked_add(time),
        _ => date.checked_add(time)?.checked_sub(offset),
    }
}

/// A time key in PostgreSQL's binary format: `date` is a big-endian `i32` of days
/// since 2000-01-01, `timestamp`/`timestamptz` a big-endian `i64` of microseconds
/// since 2000-01-01 00:00 (UTC). `None` for the wrong length, `±infinity`, or a
/// non-time `key_type`.
pub fn time_from_binary(bytes: &[u8], key_type: KeyType) -> Option<i64> {
    match key_type {
        KeyType::Date => {
            let days = i32::from_be_bytes(bytes.try_into().ok()?);
            if days == i32::MAX || days == i32::MIN {
                return None;
            }
            (i64::from(days) + PG_EPOCH_DAYS).checked_mul(MICROS_PER_DAY)
        }
        KeyType::Timestamp | KeyType::Timestamptz => {
            let micros = i64::from_be_bytes(bytes.try_into().ok()?);
            if micros == i64::MAX || micros == i64::MIN {
                return None;
            }
            micros.checked_add(PG_EPOCH_MICROS)
        }
        _ => None,
    }
}

/// A tiny byte reader for [`parse_time_text`].
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn eat(&mut self, b: u8) -> Option<()> {
        let (&first, rest) = self.0.split_first()?;
        (first == b).then(|| self.0 = rest)
    }

    fn expect(&mut self, b: u8) -> Option<()> {
        self.eat(b)
    }

    fn spaces(&mut self) {
        while self.eat(b' ').is_some() {}
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

    /// The next one to `max` digits (of a longer run, the first `max`) as a number.
    fn prefix_digits(&mut self, max: usize) -> Option<i64> {
        let n = self
            .0
            .iter()
            .take(max)
            .take_while(|b| b.is_ascii_digit())
            .count();
        let mut head = Cursor(self.0.get(..n)?);
        let value = head.digits(1, max)?;
        self.0 = self.0.get(n..)?;
        Some(value)
    }

    /// `HH:MM[:SS[.ffffff]]` as microseconds (`24:00:00` allowed, as in PostgreSQL).
    fn time_of_day(&mut self) -> Option<i64> {
        let h = self.digits(1, 2)?;
        self.expect(b':')?;
        let m = self.digits(2, 2)?;
        let (mut s, mut frac) = (0, 0);
        if self.eat(b':').is_some() {
            s = self.digits(2, 2)?;
            if self.eat(b'.').is_some() {
                let n = self.0.iter().take_while(|b| b.is_ascii_digit()).count();
                if n == 0 {
                    return None;
                }
                let (digits, rest) = self.0.split_at(n);
                self.0 = rest;
                // Six digits of microseconds, rounded half up on the seventh.
                for i in 0..6 {
                    frac = frac * 10 + digits.get(i).map_or(0, |b| i64::from(b - b'0'));
                }
                if digits.get(6).is_some_and(|b| *b >= b'5') {
                    frac += 1;
                }
            }
        }
        if m > 59 || s > 60 || h > 24 || (h == 24 && (m, s, frac) != (0, 0, 0)) {
            return None;
        }
        Some(((h * 60 + m) * 60 + s) * 1_000_000 + frac)
    }

    /// `Z`, `UTC`, `GMT` or `±HH[[:]MM[[:]SS]]` as microseconds east of UTC.
    fn offset(&mut self) -> Option<i64> {
        let upper: Vec<u8> = self.0.to_ascii_uppercase();
        for name in [&b"Z"[..], b"UTC", b"GMT"] {
            if upper == name {
                self.0 = &[];
                return Some(0);
            }
        }
        let sign = if self.eat(b'+').is_some() {
            1
        } else {
            self.expect(b'-')?;
            -1
        };
        let h = self.prefix_digits(2)?;
        let mut rest = [0i64; 2];
        for r in &mut rest {
            if self.0.is_empty() {
                break;
            }
            let _ = self.eat(b':');
            let before = self.0.len();
            *r = self.prefix_digits(2)?;
            if before - self.0.len() != 2 {
                return None;
            }
        }
        if h > 15 || rest[0] > 59 || rest[1] > 59 {
            return None;
        }
        Some(sign * ((h * 60 + rest[0]) * 60 + rest[1]) * 1_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TZ: KeyType = KeyType::Timestamptz;

    fn day(y: i64, m: u32, d: u32) -> i64 {
        days_from_civil(y, m, d) * MICROS_PER_DAY
    }

    #[test]
    fn civil_round_trips_and_known_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 1, 1), PG_EPOCH_DAYS);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert_eq!(days_from_civil(1900, 1, 1), -25_567);
        assert_eq!(
            days_from_civil(2000, 3, 1) - days_from_civil(2000, 2, 28),
            2
        );
        assert_eq!(
            days_from_civil(1900, 3, 1) - days_from_civil(1900, 2, 28),
            1
        );
        assert_eq!(
            days_from_civil(2024, 3, 1) - days_from_civil(2024, 2, 28),
            2
        );
        for days in -800_000..800_000 {
            let (y, m, d) = civil_from_days(days);
            assert!((1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m));
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn leap_years_and_month_ends() {
        assert!(is_leap_year(2000) && is_leap_year(2024) && is_leap_year(1600));
        assert!(!is_leap_year(1900) && !is_leap_year(2026) && !is_leap_year(2100));
        assert_eq!(days_in_month(2024, 2), 29);
        assert_eq!(days_in_month(1900, 2), 28);
        assert_eq!(days_in_month(2026, 4), 30);
        assert_eq!(days_in_month(2026, 12), 31);
        assert_eq!(days_in_month(2026, 13), 0);
        assert_eq!(format_date(day(2024, 2, 29)), "2024-02-29");
        assert_eq!(format_date(day(1969, 12, 31) + 5), "1969-12-31");
        assert_eq!(format_date(-1), "1969-12-31");
    }

    #[test]
    fn text_forms() {
        let base = day(2026, 11, 5) + 10 * 3_600_000_000;
        assert_eq!(parse_time_text("2026-11-05", TZ), Some(day(2026, 11, 5)));
        assert_eq!(parse_time_text("2026-11-05 10:00:00", TZ), Some(base));
        assert_eq!(parse_time_text(" 2026-11-05T10:00 ", TZ), Some(base));
        assert_eq!(
            parse_time_text("2026-11-05T10:00:00.123456", TZ),
            Some(base + 123_456)
        );
        assert_eq!(
            parse_time_text("2026-11-05 10:00:00.5", TZ),
            Some(base + 500_000)
        );
        assert_eq!(
            parse_time_text("2026-11-05 10:00:00.12345678", TZ),
            Some(base + 123_457)
        );
        let hour = 3_600_000_000;
        for (text, shift) in [
            ("2026-11-05 10:00:00+01", -hour),
            ("2026-11-05 10:00:00+01:00", -hour),
            ("2026-11-05 10:00:00 +01", -hour),
            ("2026-11-05 10:00:00-0530", 5 * hour + hour / 2),
            ("2026-11-05 10:00:00-05:30", 5 * hour + hour / 2),
            ("2026-11-05 10:00:00Z", 0),
            ("2026-11-05 10:00:00z", 0),
            ("2026-11-05 10:00:00+00", 0),
            ("2026-11-05 10:00:00 UTC", 0),
        ] {
            assert_eq!(parse_time_text(text, TZ), Some(base + shift), "{text}");
            assert_eq!(
                parse_time_text(text, KeyType::Timestamp),
                Some(base),
                "{text}"
            );
            assert_eq!(
                parse_time_text(text, KeyType::Date),
                Some(day(2026, 11, 5)),
                "{text}"
            );
        }
        assert_eq!(
            parse_time_text("2026-11-05 24:00:00", TZ),
            Some(day(2026, 11, 6))
        );
        assert_eq!(parse_time_text("1969-12-31 23:59:59.999999", TZ), Some(-1));
        assert_eq!(
            parse_time_text("1999-12-31 00:00:00", TZ),
            Some(day(1999, 12, 31))
        );
    }

    #[test]
    fn bad_text_is_none() {
        for text in [
            "",
            "infinity",
            "-infinity",
            "2026-13-01",
            "2026-02-29",
            "2026-11-31",
            "2026-11-00",
            "26-11-05",
            "2026-1-05",
            "2026-11-05 25:00",
            "2026-11-05 24:00:01",
            "2026-11-05 10:60",
            "2026-11-05 10",
            "2026-11-05 10:00:00.",
            "2026-11-05 10:00:00+1x",
            "2026-11-05 10:00:00+16",
            "2026-11-05 10:00:00 junk",
            "2026-11-05x",
            "yesterday",
        ] {
            assert_eq!(parse_time_text(text, TZ), None, "{text:?}");
        }
        assert_eq!(parse_time_text("2026-11-05", KeyType::Int), None);
        assert_eq!(parse_time_text("2024-02-29", TZ), Some(day(2024, 2, 29)));
    }

    #[test]
    fn binary_forms() {
        let unix = day(2026, 11, 5) + 10 * 3_600_000_000;
        let pg = (unix - 946_684_800_000_000).to_be_bytes();
        assert_eq!(time_from_binary(&pg, TZ), Some(unix));
        assert_eq!(time_from_binary(&pg, KeyType::Timestamp), Some(unix));
        let days = i32::try_from(days_from_civil(2026, 11, 5) - PG_EPOCH_DAYS).unwrap();
        assert_eq!(
            time_from_binary(&days.to_be_bytes(), KeyType::Date),
            Some(day(2026, 11, 5))
        );
        // Before 2000 and before 1970.
        assert_eq!(
            time_from_binary(&(-1i32).to_be_bytes(), KeyType::Date),
            Some(day(1999, 12, 31))
        );
        let old = day(1950, 6, 1);
        assert_eq!(
            time_from_binary(&(old - PG_EPOCH_MICROS).to_be_bytes(), TZ),
            Some(old)
        );
        assert_eq!(time_from_binary(&i64::MAX.to_be_bytes(), TZ), None);
        assert_eq!(
            time_from_binary(&i32::MIN.to_be_bytes(), KeyType::Date),
            None
        );
        assert_eq!(time_from_binary(&pg[..4], TZ), None);
        assert_eq!(time_from_binary(&[0; 4], KeyType::Int), None);
    }

    #[test]
    fn intervals() {
        let t = parse_time_text("2026-11-05 10:00:00", TZ).unwrap();
        assert_eq!(Interval::Day.suffix(Interval::Day.index(t)), "2026_11_05");
        assert_eq!(Interval::Month.suffix(Interval::Month.index(t)), "2026_11");
        assert_eq!(Interval::Year.suffix(Interval::Year.index(t)), "2026");
        assert_eq!(Interval::Month.index(0), 0);
        assert_eq!(Interval::Month.index(-1), -1);
        assert_eq!(Interval::Month.suffix(-1), "1969_12");
        assert_eq!(Interval::Year.index(-1), -1);
        assert_eq!(Interval::Day.index(-1), -1);
        assert_eq!(
            Interval::Month.start(Interval::Month.index(t)),
            Some(day(2026, 11, 1))
        );
        assert_eq!(
            Interval::Year.start(Interval::Year.index(t)),
            Some(day(2026, 1, 1))
        );
        assert_eq!(Interval::Month.start(-11), Some(day(1969, 2, 1)));
        assert!(Interval::Month.is_boundary(day(2024, 3, 1)));
        assert!(!Interval::Month.is_boundary(day(2024, 2, 29)));
        assert!(!Interval::Year.is_boundary(day(2024, 2, 1)));
        assert!(Interval::Day.is_boundary(day(1960, 2, 29)));
        assert!(!Interval::Day.is_boundary(day(1960, 2, 29) + 1));
        for i in [-1000, -1, 0, 1, 683, 8000] {
            for iv in [Interval::Day, Interval::Month, Interval::Year] {
                assert_eq!(iv.parse_suffix(&iv.suffix(i)), Some(i), "{iv} {i}");
                assert_eq!(iv.index(iv.start(i).unwrap()), i);
            }
        }
        assert_eq!(Interval::Month.parse_suffix("2026_13"), None);
        assert_eq!(Interval::Month.parse_suffix("2026_1"), None);
        assert_eq!(Interval::Month.parse_suffix("2026"), None);
        assert_eq!(Interval::Day.parse_suffix("2026_02_29"), None);
        assert_eq!(Interval::Year.parse_suffix("+026"), None);
        assert_eq!(Interval::parse("week"), None);
        assert_eq!(Interval::parse("month"), Some(Interval::Month));
    }
}
