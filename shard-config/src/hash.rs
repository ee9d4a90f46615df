//! PostgreSQL's hash-partitioning hash, ported to Rust.
//!
//! The `hash` sharding algorithm places a row in slot
//! `partition_hash(key) % slots`, which is exactly the REMAINDER of the
//! partition a PostgreSQL 15 table `PARTITION BY HASH (key)` with
//! `MODULUS slots` routes the row to. So a DBA can check placement in SQL:
//!
//! ```sql
//! SELECT satisfies_hash_partition('t'::regclass, 1024, <slot>, <key>);
//! ```
//!
//! What is ported, from PostgreSQL 15:
//!
//! - `src/common/hashfn.c`: Bob Jenkins' lookup3 as `hash_bytes_extended`
//!   (`hash_any_extended`) and `hash_bytes_uint32_extended`
//!   (`hash_uint32_extended`), the 64-bit seeded variants (the result is
//!   `b << 32 | c`);
//! - `src/backend/access/hash/hashfunc.c`: `hashint2extended`,
//!   `hashint4extended`, `hashint8extended` (an int8 that fits in an int4
//!   hashes like that int4, so int2, int4 and int8 keys agree) and
//!   `hashtextextended` (deterministic collations: the raw bytes);
//! - `src/backend/utils/adt/uuid.c`: `uuid_hash_extended` (the 16 bytes);
//! - `src/include/common/hashfn.h`: `hash_combine64`;
//! - `src/backend/partitioning/partbounds.c`: `compute_partition_hash_value`
//!   (start at 0, combine the seeded hash of every non-NULL key column) and
//!   the `rowHash % modulus` of `get_partition_for_tuple` and
//!   `satisfies_hash_partition`.
//!
//! PostgreSQL reads the key's bytes as little-endian words on x86_64 and
//! aarch64 (its aligned and unaligned code paths agree there); this port
//! always does, whatever the host, so it matches little-endian servers.
//!
//! ```
//! use shard_config::hash::{slot, KeyValue};
//!
//! // SELECT satisfies_hash_partition('h'::regclass, 1024, 610, 42::int8) is true.
//! assert_eq!(slot(&KeyValue::Int(42), 1024), 610);
//! assert_eq!(slot(&KeyValue::Text(b"hello world!"), 1024), 220);
//! ```

/// PostgreSQL's `HASH_PARTITION_SEED` (`src/include/catalog/partition.h`):
/// the seed every partition-key hash function is called with.
pub const PARTITION_SEED: u64 = 0x7A5B_2236_7996_DCFD;

/// The initial value of lookup3's internal state, before the length is added.
const JENKINS_INIT: u32 = 0x9e37_79b9_u32.wrapping_add(3_923_095);

/// The 64-bit random constant of `hash_combine64`.
const COMBINE64_CONST: u64 = 0x49a0_f4dd_15e5_a8e3;

/// A sharding-key value as the hash sees it.
///
/// Each variant stands for the PostgreSQL types whose hash-partitioning
/// support function hashes it the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyValue<'a> {
    /// An `int2`, `int4` or `int8` value. PostgreSQL hashes the three alike
    /// (`hashint2extended`, `hashint4extended`, `hashint8extended`), so a
    /// value gives the same slot whatever its integer type.
    Int(i64),
    /// A `text` or `varchar` value under a deterministic collation (every
    /// collation but ICU ones created `deterministic = false`): its raw bytes
    /// in the database encoding, as `hashtextextended` hashes them.
    Text(&'a [u8]),
    /// A `uuid` value: its 16 bytes in the order they are written
    /// (`uuid_hash_extended`).
    Uuid([u8; 16]),
}

/// lookup3's `mix`: mixes three 32-bit values reversibly.
#[inline(always)]
fn mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    *a = a.wrapping_sub(*c);
    *a ^= c.rotate_left(4);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a);
    *b ^= a.rotate_left(6);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b);
    *c ^= b.rotate_left(8);
    *b = b.wrapping_add(*a);
    *a = a.wrapping_sub(*c);
    *a ^= c.rotate_left(16);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a);
    *b ^= a.rotate_left(19);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b);
    *c ^= b.rotate_left(4);
    *b = b.wrapping_add(*a);
}

/// lookup3's `final`: the final mixing of three 32-bit values into `c`
/// (and `b`, which the 64-bit variants also return).
#[inline(always)]
fn final_mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(14));
    *a ^= *c;
    *a = a.wrapping_sub(c.rotate_left(11));
    *b ^= *a;
    *b = b.wrapping_sub(a.rotate_left(25));
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(16));
    *a ^= *c;
    *a = a.wrapping_sub(c.rotate_left(4));
    *b ^= *a;
    *b = b.wrapping_sub(a.rotate_left(14));
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(24));
}

/// The initial lookup3 state for a key of `len` bytes, perturbed by `seed`
/// as `hash_bytes_extended` does: a non-zero seed is hashed as a first
/// 12-byte chunk (high half into `a`, low half into `b`, zero into `c`).
#[inline(always)]
fn seeded_state(len: u32, seed: u64) -> (u32, u32, u32) {
    let init = JENKINS_INIT.wrapping_add(len);
    let (mut a, mut b, mut c) = (init, init, init);
    if seed != 0 {
        a = a.wrapping_add((seed >> 32) as u32);
        b = b.wrapping_add(seed as u32);
        mix(&mut a, &mut b, &mut c);
    }
    (a, b, c)
}

/// A little-endian 32-bit word from 4 bytes.
#[inline(always)]
fn le_word(bytes: &[u8]) -> u32 {
    let mut word = [0u8; 4];
    for (dst, src) in word.iter_mut().zip(bytes) {
        *dst = *src;
    }
    u32::from_le_bytes(word)
}

/// PostgreSQL's `hash_bytes_extended` (`hash_any_extended`): lookup3 over
/// `key` with a 64-bit `seed` (0 means unseeded), on a little-endian server.
///
/// Returns `b << 32 | c` of the final state. The length enters the state as
/// PostgreSQL's 32-bit `len` does (keys of 4 GiB or more, which PostgreSQL
/// cannot store, wrap the same way C's conversion would).
pub fn hash_bytes_extended(key: &[u8], seed: u64) -> u64 {
    let (mut a, mut b, mut c) = seeded_state(key.len() as u32, seed);

    // Whole 12-byte chunks, three little-endian words each.
    let mut chunks = key.chunks_exact(12);
    for chunk in &mut chunks {
        a = a.wrapping_add(le_word(&chunk[0..4]));
        b = b.wrapping_add(le_word(&chunk[4..8]));
        c = c.wrapping_add(le_word(&chunk[8..12]));
        mix(&mut a, &mut b, &mut c);
    }

    // The last 0..=11 bytes. PostgreSQL's little-endian `switch` adds bytes
    // 0..4 into `a` and 4..8 into `b` as little-endian words, and bytes 8..11
    // into `c` shifted left by 8 (the lowest byte of `c` is "reserved for the
    // length"); absent bytes count as zero. Then `final` runs even when no
    // bytes are left.
    let mut tail = [0u8; 12];
    let rest = chunks.remainder();
    for (dst, src) in tail.iter_mut().zip(rest) {
        *dst = *src;
    }
    a = a.wrapping_add(le_word(&tail[0..4]));
    b = b.wrapping_add(le_word(&tail[4..8]));
    c = c.wrapping_add(le_word(&tail[8..12]) << 8);

    final_mix(&mut a, &mut b, &mut c);
    (u64::from(b) << 32) | u64::from(c)
}

/// PostgreSQL's `hash_uint32_extended` (`hash_bytes_uint32_extended`): the
/// seeded 64-bit lookup3 hash of one 32-bit value, equal to
/// [`hash_bytes_extended`] over its 4 little-endian bytes.
pub fn hash_uint32_extended(k: u32, seed: u64) -> u64 {
    let (mut a, mut b, mut c) = seeded_state(4, seed);
    a = a.wrapping_add(k);
    final_mix(&mut a, &mut b, &mut c);
    (u64::from(b) << 32) | u64::from(c)
}

/// PostgreSQL's `hashint8extended`, which `hashint2extended` and
/// `hashint4extended` agree with for every int2 and int4 value.
///
/// The high half is folded into the low half (its complement when the value
/// is negative), so a value that fits in an int4 hashes as that int4 does:
/// `hash_uint32_extended((int32) value, seed)`.
pub fn hash_int8_extended(value: i64, seed: u64) -> u64 {
    let lohalf = value as u32;
    let hihalf = (value >> 32) as u32;
    let folded = if value >= 0 {
        lohalf ^ hihalf
    } else {
        lohalf ^ !hihalf
    };
    hash_uint32_extended(folded, seed)
}

/// The hash PostgreSQL's partition support function for the key's type
/// returns when called with [`PARTITION_SEED`]: `hashint8extended` (and
/// its int2/int4 twins), `hashtextextended` or `uuid_hash_extended`.
pub fn hash_key(v: &KeyValue) -> u64 {
    match v {
        KeyValue::Int(value) => hash_int8_extended(*value, PARTITION_SEED),
        KeyValue::Text(bytes) => hash_bytes_extended(bytes, PARTITION_SEED),
        KeyValue::Uuid(bytes) => hash_bytes_extended(bytes, PARTITION_SEED),
    }
}

/// PostgreSQL's `hash_combine64`: folds hash `b` into the running hash `a`.
pub fn hash_combine64(a: u64, b: u64) -> u64 {
    a ^ b
        .wrapping_add(COMBINE64_CONST)
        .wrapping_add(a << 54)
        .wrapping_add(a >> 7)
}

/// The row hash of a (possibly multi-column) partition key, as PostgreSQL's
/// `compute_partition_hash_value`: start at 0 and combine, in column order,
/// the [`hash_key`] of every non-NULL column; NULL columns are skipped, so an
/// all-NULL key hashes to 0.
pub fn partition_hash(keys: &[Option<KeyValue>]) -> u64 {
    keys.iter()
        .flatten()
        .fold(0, |row_hash, key| hash_combine64(row_hash, hash_key(key)))
}

/// The slot of a one-column key: `partition_hash(&[Some(v)]) % modulus`,
/// exactly the REMAINDER of the partition a PostgreSQL table
/// `PARTITION BY HASH` routes the row to when its partitions use MODULUS
/// `modulus`.
///
/// A `modulus` of 0 has no remainders; it gives 0 rather than panicking
/// (configuration validation rejects `slots = 0` before any hashing).
pub fn slot(v: &KeyValue, modulus: u64) -> u64 {
    partition_hash(&[Some(*v)])
        .checked_rem(modulus)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(value, to_hex(hashint8extended(value, 8816678312871386365)))` from a
    /// PostgreSQL 15.18 server (x86_64).
    const INT8_FROM_SERVER: &[(i64, u64)] = &[
        (0, 0xc2e34bda39f0f0cd),
        (1, 0x52d621058124e6d5),
        (-1, 0xba5fc748095606c2),
        (42, 0x663218bcfb84b17f),
        (2147483647, 0xac09237e4899f89c),
        (2147483648, 0x44893a0f1e949193),
        (-2147483648, 0x44893a0f1e949193),
        (-2147483649, 0xac09237e4899f89c),
        (i64::MAX, 0x44893a0f1e949193),
        (i64::MIN, 0xac09237e4899f89c),
        // hashint2extended(32767) and hashint2extended(-32768).
        (32767, 0xa6ac42e1ee4bb5eb),
        (-32768, 0x51ac94e226a0db9a),
    ];

    /// `(value, to_hex(hashtextextended(value, 8816678312871386365)))` from
    /// the same server (UTF8 database).
    const TEXT_FROM_SERVER: &[(&str, u64)] = &[
        ("", 0xb0e33d0b543fbfc3),
        ("a", 0xa2f240f8823ba67b),
        ("abc", 0x325c02d16f43e1c2),
        ("abcd", 0x37eb4043f6fdb06e),
        ("hello world!", 0xe5d29fdb5cc667f9),
        ("hello world!!", 0x6783544a443196a0),
        ("abcdefghijklmnopqrstuvwx", 0xffd910c13dcae36e),
        (
            "the quick brown fox jumps over the lazy dog",
            0xf572687ac9855b6b,
        ),
        ("héllo wörld €😀", 0xb40bc6407b722e1a),
        ("Ünïcødé ключ 鍵", 0x5a6fd1702d3c3ba6),
    ];

    /// `(value, to_hex(uuid_hash_extended(value, 8816678312871386365)))`.
    const UUID_FROM_SERVER: &[(u128, u64)] = &[
        (0, 0xb6b5d3c4aa5d92c2),
        (0xa0eebc99_9c0b_4ef8_bb6d_6bb9bd380a11, 0x05e42c7f7f75bced),
        (u128::MAX, 0xfdeeb1999c98549e),
    ];

    #[test]
    fn int_hashes_match_the_server() {
        for &(value, expected) in INT8_FROM_SERVER {
            assert_eq!(
                hash_key(&KeyValue::Int(value)),
                expected,
                "hashint8extended({value})"
            );
        }
    }

    #[test]
    fn int2_int4_int8_agree_through_the_fold() {
        // A value that fits in an int4 hashes as hash_uint32_extended of its
        // int4 bit pattern, which is what hashint4extended/hashint2extended do.
        for value in [
            0i64,
            1,
            -1,
            42,
            -42,
            i16::MIN.into(),
            i16::MAX.into(),
            i32::MIN.into(),
            i32::MAX.into(),
        ] {
            assert_eq!(
                hash_key(&KeyValue::Int(value)),
                hash_uint32_extended(value as i32 as u32, PARTITION_SEED),
                "{value}"
            );
        }
        // Values beyond int4 fold high into low, so these pairs collide on
        // the server too (see INT8_FROM_SERVER).
        assert_eq!(
            hash_key(&KeyValue::Int(i64::from(i32::MAX) + 1)),
            hash_key(&KeyValue::Int(i32::MIN.into()))
        );
        // hashint8extended(4294967295) = hashint8extended(-1) and
        // hashint8extended(4294967296) = hashint8extended(1) on the server.
        assert_eq!(
            hash_key(&KeyValue::Int(i64::from(u32::MAX))),
            0xba5fc748095606c2
        );
        assert_eq!(
            hash_key(&KeyValue::Int(i64::from(u32::MAX) + 1)),
            0x52d621058124e6d5
        );
    }

    #[test]
    fn text_hashes_match_the_server() {
        for &(value, expected) in TEXT_FROM_SERVER {
            assert_eq!(
                hash_key(&KeyValue::Text(value.as_bytes())),
                expected,
                "hashtextextended({value:?}), {} bytes",
                value.len()
            );
        }
    }

    #[test]
    fn uuid_hashes_match_the_server() {
        for &(value, expected) in UUID_FROM_SERVER {
            assert_eq!(
                hash_key(&KeyValue::Uuid(value.to_be_bytes())),
                expected,
                "uuid_hash_extended({value:032x})"
            );
        }
    }

    #[test]
    fn unseeded_hashes_match_the_server() {
        // hashint8extended(42, 0) and hashtextextended('hello world!', 0):
        // a zero seed leaves the initial state unperturbed.
        assert_eq!(hash_int8_extended(42, 0), 0x6f2a09a559fcfec8);
        assert_eq!(hash_bytes_extended(b"hello world!", 0), 0xd83830b05374aedf);
    }

    #[test]
    fn uint32_is_bytes_of_four() {
        for k in [0u32, 1, 42, 0xdead_beef, u32::MAX] {
            for seed in [0, 1, PARTITION_SEED, u64::MAX] {
                assert_eq!(
                    hash_uint32_extended(k, seed),
                    hash_bytes_extended(&k.to_le_bytes(), seed)
                );
            }
        }
    }

    #[test]
    fn every_length_changes_the_hash() {
        // Lengths 0..=40 cover every tail length and several whole chunks;
        // a hash that ignored a byte or the length would collide here.
        let data: Vec<u8> = (0u8..40).map(|i| i.wrapping_mul(37) ^ 0x5a).collect();
        let mut seen = std::collections::HashSet::new();
        for len in 0..=data.len() {
            assert!(seen.insert(hash_bytes_extended(&data[..len], PARTITION_SEED)));
            // And flipping the last byte changes it.
            if len > 0 {
                let mut flipped = data[..len].to_vec();
                flipped[len - 1] ^= 1;
                assert_ne!(
                    hash_bytes_extended(&flipped, PARTITION_SEED),
                    hash_bytes_extended(&data[..len], PARTITION_SEED)
                );
            }
        }
    }

    #[test]
    fn slots_match_the_server() {
        // SELECT r FROM generate_series(0, 1023) r
        //   WHERE satisfies_hash_partition('<parent>'::regclass, 1024, r, <value>)
        assert_eq!(slot(&KeyValue::Int(42), 1024), 610);
        assert_eq!(slot(&KeyValue::Int(-1), 1024), 933);
        assert_eq!(slot(&KeyValue::Int(i64::MIN), 1024), 383);
        assert_eq!(slot(&KeyValue::Text(b"hello world!"), 1024), 220);
        let uuid = 0xa0eebc99_9c0b_4ef8_bb6d_6bb9bd380a11_u128.to_be_bytes();
        assert_eq!(slot(&KeyValue::Uuid(uuid), 1024), 464);
        assert_eq!(slot(&KeyValue::Int(42), 8), 2);
    }

    #[test]
    fn multi_column_keys_match_the_server() {
        // A parent PARTITION BY HASH (a int8, b text), modulus 1024.
        let a = KeyValue::Int(42);
        let b = KeyValue::Text(b"abc");
        assert_eq!(partition_hash(&[Some(a), Some(b)]) % 1024, 315);
        assert_eq!(partition_hash(&[None, Some(b)]) % 1024, 677);
        assert_eq!(partition_hash(&[Some(a), None]) % 1024, 610);
        assert_eq!(partition_hash(&[None, None]), 0);
        assert_eq!(partition_hash(&[]), 0);
        assert_eq!(partition_hash(&[Some(a)]), hash_combine64(0, hash_key(&a)));
    }

    #[test]
    fn combine_is_postgres_formula() {
        assert_eq!(hash_combine64(0, 0), COMBINE64_CONST);
        let (a, b) = (0x0123_4567_89ab_cdef_u64, 0xfedc_ba98_7654_3210_u64);
        let expected = a
            ^ (b.wrapping_add(COMBINE64_CONST)
                .wrapping_add(a << 54)
                .wrapping_add(a >> 7));
        assert_eq!(hash_combine64(a, b), expected);
    }

    #[test]
    fn zero_modulus_does_not_panic() {
        assert_eq!(slot(&KeyValue::Int(42), 0), 0);
        assert_eq!(slot(&KeyValue::Int(42), 1), 0);
    }
}
