//! Snowflake IDs for key columns the proxy generates.
//!
//! An id is a positive `i64` laid out, from the most significant bit down, as:
//! a zero sign bit, the time in milliseconds since [`EPOCH_MS`], the node id,
//! and a per-millisecond sequence. With the default [`Layout`] (10 node bits,
//! 12 sequence bits) the time takes 41 bits, about 69 years from the epoch.
//!
//! Pure: the generator never reads a clock; the caller passes the wall-clock
//! time in Unix milliseconds to [`Snowflake::next_id`]. Ids from one generator
//! are strictly increasing even when that time stalls or steps backwards, and
//! ids from generators with distinct node ids never collide.
//!
//! ```
//! use shard_config::snowflake::{Layout, Snowflake, EPOCH_MS};
//!
//! let mut gen = Snowflake::new(7, Layout::default()).expect("node id fits");
//! let a = gen.next_id(EPOCH_MS + 1_000).expect("time after epoch");
//! let b = gen.next_id(EPOCH_MS + 500).expect("clock stepped back: still fine");
//! assert!(b > a);
//! assert_eq!(gen.decode(a), (EPOCH_MS + 1_000, 7, 0));
//! assert_eq!(gen.decode(b), (EPOCH_MS + 1_000, 7, 1));
//! ```

/// The custom epoch: 2024-01-01T00:00:00Z in Unix milliseconds.
pub const EPOCH_MS: u64 = 1_704_067_200_000;

/// How the 63 usable bits of an id are split between time, node id and sequence.
///
/// The time gets what is left: `63 - node_bits - seq_bits` bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Bits for the node id (at most 16); node ids range over `0..2^node_bits`.
    pub node_bits: u8,
    /// Bits for the per-millisecond sequence (at most 32).
    pub seq_bits: u8,
}

impl Default for Layout {
    /// 10 node bits and 12 sequence bits, leaving 41 bits of time.
    fn default() -> Self {
        Layout {
            node_bits: 10,
            seq_bits: 12,
        }
    }
}

impl Layout {
    /// Bits left for the time.
    fn time_bits(self) -> u32 {
        63 - u32::from(self.node_bits) - u32::from(self.seq_bits)
    }
}

/// Why a generator could not be built or an id could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnowflakeError {
    /// The layout leaves no bit for the time or gives a field more bits than its type holds.
    #[error(
        "invalid snowflake layout: node_bits {node_bits} (at most 16) and seq_bits {seq_bits} \
         (at most 32) must leave at least one bit of time"
    )]
    InvalidLayout {
        /// The node bits asked for.
        node_bits: u8,
        /// The sequence bits asked for.
        seq_bits: u8,
    },
    /// The node id does not fit in the layout's node bits.
    #[error("snowflake node id {node_id} out of range: must be at most {max}")]
    NodeIdOutOfRange {
        /// The node id given.
        node_id: u16,
        /// The largest node id the layout allows.
        max: u16,
    },
    /// The time given is before [`EPOCH_MS`].
    #[error("time {now_ms} ms is before the snowflake epoch {EPOCH_MS} ms")]
    BeforeEpoch {
        /// The time given, in Unix milliseconds.
        now_ms: u64,
    },
    /// The time no longer fits in the layout's time bits.
    #[error(
        "snowflake time overflow: {elapsed_ms} ms since the epoch does not fit in {bits} bits"
    )]
    TimeOverflow {
        /// Milliseconds since [`EPOCH_MS`] that were to be encoded.
        elapsed_ms: u64,
        /// The layout's time bits.
        bits: u32,
    },
}

/// One id generator for one node.
///
/// Not thread-safe by itself: share it behind a `Mutex`, or give each thread
/// its own generator with a distinct node id.
#[derive(Debug, Clone)]
pub struct Snowflake {
    node_id: u16,
    layout: Layout,
    /// Logical timestamp (ms since [`EPOCH_MS`]) of the last id, `None` before the first.
    last_ms: Option<u64>,
    /// Sequence of the last id.
    seq: u64,
}

impl Snowflake {
    /// A generator for `node_id`, which must fit in `layout.node_bits`.
    pub fn new(node_id: u16, layout: Layout) -> Result<Self, SnowflakeError> {
        if layout.node_bits > 16
            || layout.seq_bits > 32
            || u32::from(layout.node_bits) + u32::from(layout.seq_bits) > 62
        {
            return Err(SnowflakeError::InvalidLayout {
                node_bits: layout.node_bits,
                seq_bits: layout.seq_bits,
            });
        }
        let max = ((1u32 << layout.node_bits) - 1) as u16;
        if node_id > max {
            return Err(SnowflakeError::NodeIdOutOfRange { node_id, max });
        }
        Ok(Snowflake {
            node_id,
            layout,
            last_ms: None,
            seq: 0,
        })
    }

    /// The node id this generator stamps into its ids.
    pub fn node_id(&self) -> u16 {
        self.node_id
    }

    /// The layout of this generator's ids.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Next id for wall-clock `now_ms` (Unix ms).
    ///
    /// Strictly increasing across calls on one generator, even if `now_ms` goes
    /// backwards (then it keeps using its last timestamp and borrows from the
    /// sequence; when the sequence is exhausted it advances its logical timestamp
    /// by 1 ms rather than blocking or repeating) and even when more than
    /// `2^seq_bits` ids are asked for in one ms.
    ///
    /// Fails only if `now_ms` is before [`EPOCH_MS`] or the time no longer fits
    /// the layout's time bits; the generator's state is then unchanged.
    pub fn next_id(&mut self, now_ms: u64) -> Result<i64, SnowflakeError> {
        let elapsed = now_ms
            .checked_sub(EPOCH_MS)
            .ok_or(SnowflakeError::BeforeEpoch { now_ms })?;
        let max_seq = (1u64 << self.layout.seq_bits) - 1;
        let (ms, seq) = match self.last_ms {
            Some(last) if elapsed <= last => {
                if self.seq < max_seq {
                    (last, self.seq + 1)
                } else {
                    // Sequence exhausted: run the logical clock ahead by 1 ms.
                    (last.saturating_add(1), 0)
                }
            }
            _ => (elapsed, 0),
        };
        let bits = self.layout.time_bits();
        if ms >> bits != 0 {
            return Err(SnowflakeError::TimeOverflow {
                elapsed_ms: ms,
                bits,
            });
        }
        self.last_ms = Some(ms);
        self.seq = seq;
        let seq_bits = u32::from(self.layout.seq_bits);
        let node_shift = seq_bits;
        let time_shift = seq_bits + u32::from(self.layout.node_bits);
        let id = (ms << time_shift) | (u64::from(self.node_id) << node_shift) | seq;
        // The time fits in `bits`, so the top bit is clear and the id is positive.
        Ok(id as i64)
    }

    /// Splits an id made with this generator's layout into
    /// (Unix milliseconds, node id, sequence).
    ///
    /// The sign bit of `id` is ignored; any `i64` decodes without panicking.
    pub fn decode(&self, id: i64) -> (u64, u16, u32) {
        let raw = (id as u64) & (i64::MAX as u64);
        let seq_bits = u32::from(self.layout.seq_bits);
        let node_bits = u32::from(self.layout.node_bits);
        let seq = raw & ((1u64 << seq_bits) - 1);
        let node = (raw >> seq_bits) & ((1u64 << node_bits) - 1);
        let ms = raw >> (seq_bits + node_bits);
        (ms + EPOCH_MS, node as u16, seq as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Tiny xorshift64 so the randomized test needs no new dependency.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }
    }

    fn generator(node: u16) -> Snowflake {
        Snowflake::new(node, Layout::default()).expect("valid node")
    }

    #[test]
    fn monotonic_over_a_million_ids_with_a_misbehaving_clock() {
        let mut g = generator(3);
        let mut now = EPOCH_MS + 10_000_000;
        let mut last = 0i64;
        for i in 0..1_000_000u64 {
            match i % 50_000 {
                // Jump backwards by a few seconds.
                0 => now -= 5_000,
                // Jump forward.
                25_000 => now += 3_000,
                // Otherwise the clock stalls most of the time and ticks sometimes.
                _ if i % 7 == 0 => now += 1,
                _ => {}
            }
            let id = g.next_id(now).expect("id");
            assert!(id > 0);
            assert!(id > last, "id {id} after {last} at call {i}");
            last = id;
        }
    }

    #[test]
    fn more_than_a_sequence_in_one_ms_stays_increasing() {
        let mut g = generator(1);
        let now = EPOCH_MS + 42;
        let mut last = 0i64;
        for _ in 0..(3 * 4096 + 5) {
            let id = g.next_id(now).expect("id");
            assert!(id > last);
            last = id;
        }
        // The logical clock ran ahead by 3 ms.
        assert_eq!(g.decode(last), (now + 3, 1, 4));
        // Real time catching up past it resets the sequence.
        let id = g.next_id(now + 10).expect("id");
        assert_eq!(g.decode(id), (now + 10, 1, 0));
    }

    #[test]
    fn distinct_across_sixteen_interleaved_generators() {
        let mut gens: Vec<Snowflake> = (0..16).map(|n| generator(n * 60 + 1)).collect();
        let mut seen = HashSet::new();
        let mut now = EPOCH_MS + 1_000_000;
        for i in 0..100_000usize {
            if i % 97 == 0 {
                now += 1;
            }
            if i % 10_007 == 0 {
                now -= 2_000;
            }
            let id = gens[i % 16].next_id(now).expect("id");
            assert!(seen.insert(id), "duplicate id {id}");
        }
        assert_eq!(seen.len(), 100_000);
    }

    #[test]
    fn decode_round_trips() {
        for layout in [
            Layout::default(),
            Layout {
                node_bits: 5,
                seq_bits: 7,
            },
            Layout {
                node_bits: 16,
                seq_bits: 32,
            },
            Layout {
                node_bits: 0,
                seq_bits: 0,
            },
        ] {
            let node = ((1u32 << layout.node_bits) - 1) as u16;
            let mut g = Snowflake::new(node, layout).expect("valid");
            let t = EPOCH_MS + 12_345; // fits even 15 bits of time
            let a = g.next_id(t).expect("id");
            let b = g.next_id(t).expect("id");
            assert_eq!(g.decode(a), (t, node, 0));
            if layout.seq_bits > 0 {
                assert_eq!(g.decode(b), (t, node, 1));
            } else {
                assert_eq!(g.decode(b), (t + 1, node, 0));
            }
        }
    }

    #[test]
    fn node_id_out_of_range_is_rejected() {
        assert_eq!(
            Snowflake::new(1024, Layout::default()).unwrap_err(),
            SnowflakeError::NodeIdOutOfRange {
                node_id: 1024,
                max: 1023
            }
        );
        assert!(Snowflake::new(1023, Layout::default()).is_ok());
        assert!(Snowflake::new(
            1,
            Layout {
                node_bits: 0,
                seq_bits: 12
            }
        )
        .is_err());
    }

    #[test]
    fn invalid_layouts_are_rejected() {
        for (node_bits, seq_bits) in [(17, 0), (0, 33), (16, 47), (31, 32)] {
            assert_eq!(
                Snowflake::new(
                    0,
                    Layout {
                        node_bits,
                        seq_bits
                    }
                )
                .unwrap_err(),
                SnowflakeError::InvalidLayout {
                    node_bits,
                    seq_bits
                }
            );
        }
        // 16 + 32 leaves 15 bits of time: allowed.
        assert!(Snowflake::new(
            0,
            Layout {
                node_bits: 16,
                seq_bits: 32
            }
        )
        .is_ok());
    }

    #[test]
    fn time_before_epoch_is_rejected() {
        let mut g = generator(0);
        assert_eq!(
            g.next_id(EPOCH_MS - 1).unwrap_err(),
            SnowflakeError::BeforeEpoch {
                now_ms: EPOCH_MS - 1
            }
        );
        assert_eq!(
            g.next_id(0).unwrap_err(),
            SnowflakeError::BeforeEpoch { now_ms: 0 }
        );
        let id = g.next_id(EPOCH_MS).expect("epoch itself is fine");
        assert_eq!(id, 0);
        assert!(g.next_id(EPOCH_MS).expect("id") > 0);
    }

    #[test]
    fn time_overflow_is_rejected_and_state_kept() {
        let mut g = generator(5);
        let max_ms = (1u64 << 41) - 1;
        let last = g.next_id(EPOCH_MS + max_ms).expect("last representable ms");
        assert!(last > 0);
        assert!(matches!(
            g.next_id(EPOCH_MS + max_ms + 1),
            Err(SnowflakeError::TimeOverflow { bits: 41, .. })
        ));
        assert!(matches!(
            g.next_id(u64::MAX),
            Err(SnowflakeError::TimeOverflow { .. })
        ));
        // Still usable at the last ms until the sequence runs out.
        let next = g.next_id(EPOCH_MS).expect("borrows from the sequence");
        assert!(next > last);
        assert_eq!(g.decode(next), (EPOCH_MS + max_ms, 5, 1));
    }

    #[test]
    fn ids_are_positive_at_the_top_of_the_time_range() {
        let mut g = generator(1023);
        let max_ms = (1u64 << 41) - 1;
        for _ in 0..4096 {
            assert!(g.next_id(EPOCH_MS + max_ms).expect("id") > 0);
        }
    }

    #[test]
    fn randomized_fixed_seed() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let layouts = [
            Layout::default(),
            Layout {
                node_bits: 4,
                seq_bits: 2,
            },
            Layout {
                node_bits: 8,
                seq_bits: 0,
            },
        ];
        for layout in layouts {
            let nodes = 1u64 << layout.node_bits;
            let mut gens: Vec<Snowflake> = (0..4)
                .map(|i| {
                    let node = ((rng.next() % nodes) as u16 & !3) | i;
                    Snowflake::new(node % nodes as u16, layout).expect("valid")
                })
                .collect();
            let distinct: HashSet<u16> = gens.iter().map(Snowflake::node_id).collect();
            let mut last = vec![0i64; gens.len()];
            let mut seen = HashSet::new();
            let mut now = EPOCH_MS + rng.next() % 1_000_000_000;
            for _ in 0..50_000 {
                now = match rng.next() % 10 {
                    0 => now.saturating_sub(rng.next() % 10_000).max(EPOCH_MS),
                    1 => now + rng.next() % 10_000,
                    2..=4 => now + 1,
                    _ => now,
                };
                let k = (rng.next() % gens.len() as u64) as usize;
                let id = gens[k].next_id(now).expect("id");
                assert!(id > 0);
                assert!(id > last[k]);
                last[k] = id;
                let (ms, node, seq) = gens[k].decode(id);
                assert_eq!(node, gens[k].node_id());
                assert!(ms >= EPOCH_MS);
                assert!(u64::from(seq) < 1u64 << layout.seq_bits);
                if distinct.len() == gens.len() {
                    assert!(seen.insert(id), "duplicate id {id}");
                }
            }
        }
    }
}
