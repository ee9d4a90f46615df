//! Geometric types, whose text is floats in punctuation: `point` `(x,y)`,
//! `lseg` `[(x1,y1),(x2,y2)]`, `box` `(x1,y1),(x2,y2)`, `line` `{A,B,C}`,
//! `circle` `<(x,y),r>`, `path` (`[…]` open, `(…)` closed) and `polygon`
//! `((x1,y1),…)`. Each is sent as its floats in text order (as `float8`s),
//! a path with a closed flag and a point count first, a polygon with a
//! point count.

/// Which geometric type a text is of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Shape {
    /// `point`
    Point,
    /// `lseg`
    Lseg,
    /// `box`
    Box,
    /// `line`
    Line,
    /// `circle`
    Circle,
    /// `path`
    Path,
    /// `polygon`
    Polygon,
}

/// The punctuation of `text` with every float replaced by `#`, and the floats.
fn skeleton(text: &[u8]) -> Option<(Vec<u8>, Vec<f64>)> {
    let punct = |b: &u8| b"()[]{}<>,".contains(b);
    let mut shape = Vec::new();
    let mut floats = Vec::new();
    let mut rest = text;
    while let Some(&b) = rest.first() {
        if punct(&b) {
            shape.push(b);
            rest = &rest[1..];
            continue;
        }
        let n = rest.iter().take_while(|b| !punct(b)).count();
        let (word, tail) = rest.split_at(n);
        floats.push(super::scalar::float8(word)?);
        shape.push(b'#');
        rest = tail;
    }
    Some((shape, floats))
}

/// `n` points `(#,#)` joined by commas.
fn points(n: usize) -> Vec<u8> {
    vec![&b"(#,#)"[..]; n].join(&b","[..])
}

/// A geometric value as its `*_send` function writes it.
pub(super) fn geometric(text: &[u8], shape: Shape, out: &mut Vec<u8>) -> Option<()> {
    let (got, floats) = skeleton(text)?;
    let npts = floats.len() / 2;
    let want: Vec<u8> = match shape {
        Shape::Point => points(1),
        Shape::Lseg => [&b"["[..], &points(2), b"]"].concat(),
        Shape::Box => points(2),
        Shape::Line => b"{#,#,#}".to_vec(),
        Shape::Circle => b"<(#,#),#>".to_vec(),
        Shape::Path if got.first() == Some(&b'[') => [&b"["[..], &points(npts), b"]"].concat(),
        Shape::Path | Shape::Polygon => [&b"("[..], &points(npts), b")"].concat(),
    };
    if got != want {
        return None;
    }
    match shape {
        Shape::Path => {
            out.push(u8::from(got.first() == Some(&b'(')));
            out.extend_from_slice(&i32::try_from(npts).ok()?.to_be_bytes());
        }
        Shape::Polygon => out.extend_from_slice(&i32::try_from(npts).ok()?.to_be_bytes()),
        _ => {}
    }
    for f in floats {
        out.extend_from_slice(&f.to_bits().to_be_bytes());
    }
    Some(())
}
