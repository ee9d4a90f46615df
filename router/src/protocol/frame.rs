//! Splitting a byte stream into Postgres protocol frames.
//!
//! A frame is a one-byte tag followed by a big-endian `i32` length that counts
//! itself but not the tag. We first *check* that a whole frame is buffered,
//! then *split* it off without copying; the bytes are forwarded as they came.

use bytes::{Bytes, BytesMut};

/// Messages other than these may be at most [`SMALL_MESSAGE_LIMIT`] bytes,
/// as in Postgres's own `PQ_SMALL_MESSAGE_LIMIT`.
const LARGE_TAGS: &[u8] = b"QPBFdpDTVEN";

/// Upper bound for messages that never carry user data (Sync, Flush, …).
pub const SMALL_MESSAGE_LIMIT: usize = 10_000;

/// One complete protocol message: the tag and the whole original bytes.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The message type byte.
    pub tag: u8,
    /// The whole message, header included.
    pub bytes: Bytes,
}

impl Frame {
    /// The message body after the 5-byte header.
    pub fn body(&self) -> &[u8] {
        &self.bytes[5..]
    }
}

/// A frame header that cannot be honoured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length field is below 4 (it must count itself).
    #[error("invalid message length {len} for message type '{}'", *tag as char)]
    BadLength {
        /// The message type byte.
        tag: u8,
        /// The length field as sent.
        len: i64,
    },
    /// The length field exceeds what the proxy accepts.
    #[error("message of type '{}' too large: {len} bytes (limit {limit})", *tag as char)]
    TooLarge {
        /// The message type byte.
        tag: u8,
        /// The length field as sent.
        len: usize,
        /// The limit that applied.
        limit: usize,
    },
}

/// Returns the total size of the frame at the start of `buf` once it is
/// completely buffered, `None` while more bytes are needed.
pub fn check(buf: &[u8], max: usize) -> Result<Option<usize>, FrameError> {
    if buf.len() < 5 {
        return Ok(None);
    }
    let tag = buf[0];
    let len = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
    if len < 4 {
        return Err(FrameError::BadLength {
            tag,
            len: len.into(),
        });
    }
    let len = len as usize;
    let limit = if LARGE_TAGS.contains(&tag) {
        max
    } else {
        SMALL_MESSAGE_LIMIT.min(max)
    };
    if len > limit {
        return Err(FrameError::TooLarge { tag, len, limit });
    }
    let total = len + 1;
    Ok((buf.len() >= total).then_some(total))
}

/// Splits the first complete frame off `buf`, if one is buffered.
pub fn split(buf: &mut BytesMut, max: usize) -> Result<Option<Frame>, FrameError> {
    Ok(check(buf, max)?.map(|total| {
        let bytes = buf.split_to(total).freeze();
        Frame {
            tag: bytes[0],
            bytes,
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn splits_whole_frames_only() {
        let mut buf = BytesMut::from(&b"Z\0\0\0\x05IQ\0\0\0\x0bSEL"[..]);
        let f = split(&mut buf, 1 << 20).unwrap().unwrap();
        assert_eq!(f.tag, b'Z');
        assert_eq!(f.body(), b"I");
        assert!(split(&mut buf, 1 << 20).unwrap().is_none());
        buf.extend_from_slice(b"ECT\0");
        let f = split(&mut buf, 1 << 20).unwrap().unwrap();
        assert_eq!(f.body(), b"SELECT\0");
        assert!(buf.is_empty());
    }

    #[test]
    fn rejects_lying_lengths() {
        assert!(matches!(
            check(b"Q\0\0\0\x03", 100),
            Err(FrameError::BadLength { .. })
        ));
        assert!(matches!(
            check(b"Q\xff\xff\xff\xff", 100),
            Err(FrameError::BadLength { .. })
        ));
        // a 1 GiB Query
        assert!(matches!(
            check(b"Q\x40\0\0\0", 64 << 20),
            Err(FrameError::TooLarge { .. })
        ));
        // Sync is small whatever the limit
        assert!(matches!(
            check(b"S\0\x01\0\0", 64 << 20),
            Err(FrameError::TooLarge { .. })
        ));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..4096), max in 5usize..100_000) {
            let mut buf = BytesMut::from(&data[..]);
            let mut consumed = 0;
            while let Ok(Some(f)) = split(&mut buf, max) {
                prop_assert!(f.bytes.len() >= 5);
                prop_assert!(f.bytes.len() <= max + 1);
                consumed += f.bytes.len();
                let _ = crate::protocol::messages::Parse::read(&f);
                let _ = crate::protocol::messages::Bind::read(&f);
                let _ = crate::protocol::messages::Target::read(&f);
                let _ = crate::protocol::messages::query_text(&f);
            }
            prop_assert!(consumed + buf.len() == data.len());
        }
    }
}
