//! Arrays, from `array_out`'s text to `array_send`'s binary form.
//!
//! The text: an optional decoration of lower and upper bounds
//! (`[0:2]={1,2,3}`, written when a lower bound is not 1), then nested
//! braces, one level per dimension, elements separated by commas. An
//! element is quoted (`"a,b"`, with `\"` and `\\` inside) when it is empty,
//! spells `NULL`, or holds a delimiter, brace, quote, backslash or space; an
//! unquoted `NULL` is the SQL NULL. `{}` is the empty array.
//!
//! The binary form: the number of dimensions, a has-NULLs flag, the element
//! type, each dimension's length and lower bound, then each element as an
//! `int32` length (`-1` for NULL) and its own binary form.
//!
//! One difference from the server cannot be recovered from the text: a
//! server may send the has-NULLs flag set for an array that holds no NULL
//! (a slice of an array that had some keeps its NULL bitmap); here the flag
//! is set exactly when an element is NULL. Readers (`array_recv`, drivers)
//! do not depend on it.

/// PostgreSQL's limit on the number of dimensions (`MAXDIM`).
const MAX_DIMS: usize = 6;

/// `array_isspace`: what `array_in` skips around elements and braces.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// A reader over an array's text.
struct Parser<'a> {
    text: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    fn eat(&mut self, b: u8) -> bool {
        let hit = self.peek() == Some(b);
        if hit {
            self.at += 1;
        }
        hit
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(is_space) {
            self.at += 1;
        }
    }

    /// A signed decimal `int32`.
    fn int(&mut self) -> Option<i64> {
        self.skip_space();
        let start = self.at;
        if !self.eat(b'-') {
            self.eat(b'+');
        }
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
        let word = std::str::from_utf8(self.text.get(start..self.at)?).ok()?;
        let n = word.parse::<i32>().ok()?;
        self.skip_space();
        Some(i64::from(n))
    }

    /// The bounds decoration `[lb:ub]…=` (`[ub]` meaning `[1:ub]`), if any.
    fn decoration(&mut self) -> Option<Vec<(i64, i64)>> {
        let mut bounds = Vec::new();
        self.skip_space();
        while self.eat(b'[') {
            if bounds.len() == MAX_DIMS {
                return None;
            }
            let first = self.int()?;
            let pair = if self.eat(b':') {
                (first, self.int()?)
            } else {
                (1, first)
            };
            if !self.eat(b']') {
                return None;
            }
            bounds.push(pair);
            self.skip_space();
        }
        if !bounds.is_empty() && !self.eat(b'=') {
            return None;
        }
        Some(bounds)
    }

    /// One element into `value` (unescaped); `true` for an unquoted `NULL`.
    fn element(&mut self, value: &mut Vec<u8>) -> Option<bool> {
        value.clear();
        if self.eat(b'"') {
            loop {
                match self.next()? {
                    b'"' => return Some(false),
                    b'\\' => value.push(self.next()?),
                    b => value.push(b),
                }
            }
        }
        let mut escaped = false;
        // the length without trailing unescaped whitespace
        let mut keep = 0;
        loop {
            match self.peek()? {
                b',' | b'}' => break,
                b'{' | b'"' => return None,
                b'\\' => {
                    self.at += 1;
                    value.push(self.next()?);
                    escaped = true;
                    keep = value.len();
                }
                b => {
                    self.at += 1;
                    value.push(b);
                    if !is_space(b) {
                        keep = value.len();
                    }
                }
            }
        }
        value.truncate(keep);
        Some(!escaped && value.eq_ignore_ascii_case(b"NULL"))
    }

    /// The braces: calls `item` on each element in order and returns the
    /// length of each dimension (none for `{}`). `None` unless the nesting
    /// is rectangular and the text ends after the outer brace.
    fn body(&mut self, item: &mut dyn FnMut(&mut Self) -> Option<()>) -> Option<Vec<usize>> {
        self.skip_space();
        if !self.eat(b'{') {
            return None;
        }
        let mut depth = 1;
        let mut counts = [0usize; MAX_DIMS];
        let mut dims: [Option<usize>; MAX_DIMS] = [None; MAX_DIMS];
        let mut ndim: Option<usize> = None;
        let (mut want_item, mut just_opened) = (true, true);
        loop {
            self.skip_space();
            let b = self.peek()?;
            if want_item {
                match b {
                    b'}' if just_opened && depth == 1 && ndim.is_none() => {
                        self.at += 1;
                        break;
                    }
                    b'{' => {
                        if depth == MAX_DIMS || ndim.is_some_and(|n| depth >= n) {
                            return None;
                        }
                        self.at += 1;
                        depth += 1;
                        counts[depth - 1] = 0;
                        just_opened = true;
                    }
                    b'}' | b',' => return None,
                    _ => {
                        if *ndim.get_or_insert(depth) != depth {
                            return None;
                        }
                        item(self)?;
                        counts[depth - 1] += 1;
                        want_item = false;
                    }
                }
                continue;
            }
            self.at += 1;
            match b {
                b',' => (want_item, just_opened) = (true, false),
                b'}' => {
                    let n = counts[depth - 1];
                    if *dims[depth - 1].get_or_insert(n) != n {
                        return None;
                    }
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                    counts[depth - 1] += 1;
                }
                _ => return None,
            }
        }
        self.skip_space();
        if self.at != self.text.len() {
            return None;
        }
        dims[..ndim.unwrap_or(0)].iter().copied().collect()
    }
}

/// An array of `elem` (a non-array type `encode` supports) as `array_send`
/// writes it.
/// `encode` writes one element (the caller's encoder: arrays nest any type).
pub(super) fn array(
    text: &[u8],
    elem: u32,
    out: &mut Vec<u8>,
    encode: fn(u32, &[u8], &mut Vec<u8>) -> Option<()>,
) -> Option<()> {
    let mut p = Parser { text, at: 0 };
    let bounds = p.decoration()?;
    let mut body = Vec::new();
    let mut value = Vec::new();
    let mut has_null = false;
    let dims = p.body(&mut |p: &mut Parser| {
        if p.element(&mut value)? {
            has_null = true;
            body.extend_from_slice(&(-1i32).to_be_bytes());
            return Some(());
        }
        let at = body.len();
        body.extend_from_slice(&[0; 4]);
        encode(elem, &value, &mut body)?;
        let len = i32::try_from(body.len() - at - 4).ok()?;
        body[at..at + 4].copy_from_slice(&len.to_be_bytes());
        Some(())
    })?;
    let lower: Vec<i64> = match bounds.as_slice() {
        [] => vec![1; dims.len()],
        _ if bounds.len() != dims.len() => return None,
        _ => {
            let fits = bounds.iter().zip(&dims).all(|(&(lb, ub), &n)| {
                i64::try_from(n).is_ok_and(|n| ub.checked_sub(lb) == Some(n - 1))
            });
            if !fits {
                return None;
            }
            bounds.iter().map(|&(lb, _)| lb).collect()
        }
    };
    out.extend_from_slice(&i32::try_from(dims.len()).ok()?.to_be_bytes());
    out.extend_from_slice(&i32::from(has_null).to_be_bytes());
    out.extend_from_slice(&elem.to_be_bytes());
    for (&n, &lb) in dims.iter().zip(&lower) {
        out.extend_from_slice(&i32::try_from(n).ok()?.to_be_bytes());
        out.extend_from_slice(&i32::try_from(lb).ok()?.to_be_bytes());
    }
    out.extend_from_slice(&body);
    Some(())
}
