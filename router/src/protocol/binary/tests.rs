//! Unit tests of the text-to-binary encoders: the tricky spellings, checked
//! against the bytes PostgreSQL's `*_send` functions write.

use super::formats::ResultFormats;
use bytes::BytesMut;

use super::*;

fn enc(oid: u32, text: &str) -> Option<Vec<u8>> {
    let mut v = Vec::new();
    encode(oid, text.as_bytes(), &mut v).map(|()| v)
}

#[test]
fn numerics_match_postgres_numeric_send() {
    // as numeric_send gives them on PostgreSQL 15
    let hex = |v: Vec<u8>| v.iter().map(|b| format!("{b:02x}")).collect::<String>();
    assert_eq!(hex(enc(NUMERIC, "0").unwrap()), "0000000000000000");
    assert_eq!(hex(enc(NUMERIC, "0.00").unwrap()), "0000000000000002");
    assert_eq!(hex(enc(NUMERIC, "1").unwrap()), "00010000000000000001");
    assert_eq!(
        hex(enc(NUMERIC, "-12345.678").unwrap()),
        "0003000140000003000109291a7c"
    );
    assert_eq!(hex(enc(NUMERIC, "10000").unwrap()), "00010001000000000001");
    assert_eq!(hex(enc(NUMERIC, "0.0001").unwrap()), "0001ffff000000040001");
    assert_eq!(hex(enc(NUMERIC, "NaN").unwrap()), "00000000c0000000");
    assert_eq!(hex(enc(NUMERIC, "Infinity").unwrap()), "00000000d0000020");
    assert_eq!(hex(enc(NUMERIC, "-Infinity").unwrap()), "00000000f0000020");
    assert!(enc(NUMERIC, "1e5").is_none());
    assert!(enc(NUMERIC, "").is_none());
}

#[test]
fn scalars() {
    assert_eq!(enc(INT4, "-2").unwrap(), (-2i32).to_be_bytes());
    assert_eq!(
        enc(INT8, "9007199254740993").unwrap(),
        9007199254740993i64.to_be_bytes()
    );
    assert_eq!(enc(BOOL, "t").unwrap(), [1]);
    assert_eq!(
        enc(FLOAT8, "-Infinity").unwrap(),
        f64::NEG_INFINITY.to_bits().to_be_bytes()
    );
    assert_eq!(enc(FLOAT4, "0.1").unwrap(), 0.1f32.to_bits().to_be_bytes());
    assert_eq!(enc(BYTEA, "\\x00ff").unwrap(), [0, 255]);
    assert_eq!(enc(DATE, "2000-01-02").unwrap(), 1i32.to_be_bytes());
    assert_eq!(enc(DATE, "1999-12-31").unwrap(), (-1i32).to_be_bytes());
    assert_eq!(
        enc(TIMESTAMPTZ, "2000-01-01 01:00:00.5+01").unwrap(),
        500_000i64.to_be_bytes()
    );
    assert_eq!(enc(TIMESTAMP, "infinity").unwrap(), i64::MAX.to_be_bytes());
    assert_eq!(
        enc(UUID, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11").unwrap()[..2],
        [0xa0, 0xee]
    );
    assert!(enc(INT4, "x").is_none());
    assert!(enc(3904, "[1,2)").is_none());
}

#[test]
fn rows_reencode_only_binary_columns() {
    let mut text = BytesMut::new();
    crate::protocol::messages::data_row(&mut text, &[Some("7"), None, Some("a")]);
    let mut out = BytesMut::new();
    ResultFormats::new(vec![1, 0, 0])
        .encode_rows(&[INT4, INT4, TEXT], &text, &mut out)
        .unwrap();
    let mut want = BytesMut::new();
    crate::protocol::messages::data_row_bytes(
        &mut want,
        &[Some(&7i32.to_be_bytes()), None, Some(b"a")],
    );
    assert_eq!(out, want);
}

/// `array_send`'s bytes for elements given as their binary forms.
fn array_bytes(elem: u32, dims: &[(i32, i32)], elems: &[Option<&[u8]>]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&(dims.len() as i32).to_be_bytes());
    v.extend_from_slice(&i32::from(elems.iter().any(Option::is_none)).to_be_bytes());
    v.extend_from_slice(&elem.to_be_bytes());
    for (n, lb) in dims {
        v.extend_from_slice(&n.to_be_bytes());
        v.extend_from_slice(&lb.to_be_bytes());
    }
    for e in elems {
        match e {
            Some(b) => {
                v.extend_from_slice(&(b.len() as i32).to_be_bytes());
                v.extend_from_slice(b);
            }
            None => v.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    v
}

#[test]
fn arrays_quoting_nulls_and_nesting() {
    let four = |n: i32| n.to_be_bytes();
    assert_eq!(
        enc(1007, "{1,NULL,3}").unwrap(),
        array_bytes(INT4, &[(3, 1)], &[Some(&four(1)), None, Some(&four(3))])
    );
    assert_eq!(
        enc(1009, r#"{{"a,b","c\"d"},{NULL,"NULL"}}"#).unwrap(),
        array_bytes(
            TEXT,
            &[(2, 1), (2, 1)],
            &[Some(b"a,b"), Some(b"c\"d"), None, Some(b"NULL")]
        )
    );
    assert_eq!(
        enc(1009, r#"{"back\\slash","","{}"," x ",null}"#).unwrap(),
        array_bytes(
            TEXT,
            &[(5, 1)],
            &[
                Some(b"back\\slash"),
                Some(b""),
                Some(b"{}"),
                Some(b" x "),
                None
            ]
        )
    );
    assert_eq!(
        enc(1016, "[2:3]={7,8}").unwrap(),
        array_bytes(
            INT8,
            &[(2, 2)],
            &[Some(&7i64.to_be_bytes()), Some(&8i64.to_be_bytes())]
        )
    );
    assert_eq!(
        enc(1007, "[-1:0][3:3]={{1},{2}}").unwrap(),
        array_bytes(INT4, &[(2, -1), (1, 3)], &[Some(&four(1)), Some(&four(2))])
    );
    assert_eq!(enc(1007, "{}").unwrap(), array_bytes(INT4, &[], &[]));
    assert_eq!(
        enc(1002, r#"{a,"\\","\\351",""}"#).unwrap(),
        array_bytes(
            CHAR,
            &[(4, 1)],
            &[Some(b"a"), Some(b"\\"), Some(&[0xe9]), Some(&[0])]
        )
    );
}

#[test]
fn malformed_arrays_are_refused() {
    for bad in [
        "",
        "{",
        "{1,}",
        "{,1}",
        "{1,2}}",
        "{1,2} x",
        "{{1,2},{3}}",
        "{{1},2}",
        "{1,{2}}",
        "{{1,2},{}}",
        "[1:3]={1,2}",
        "[1:2][1:1]={1,2}",
        "[1:0]={}",
        "[1:2={1,2}",
        "[1:2]{1,2}",
        "{\"1}",
        "{1\"2\"}",
        "{{{{{{{1}}}}}}}",
        "{x}",
    ] {
        assert!(enc(1007, bad).is_none(), "{bad:?} accepted");
    }
    assert!(enc(1007, "{{{{{{1}}}}}}").is_some());
    // a value that fails leaves nothing half-written behind
    let mut out = vec![9];
    assert!(encode(1007, b"{1,x}", &mut out).is_none());
    assert_eq!(out, [9]);
}

#[test]
fn intervals_in_postgres_style() {
    let iv = |micros: i64, days: i32, months: i32| {
        [
            &micros.to_be_bytes()[..],
            &days.to_be_bytes(),
            &months.to_be_bytes(),
        ]
        .concat()
    };
    assert_eq!(
        enc(INTERVAL, "1 year 2 mons 3 days 04:05:06.789").unwrap(),
        iv(14_706_789_000, 3, 14)
    );
    assert_eq!(
        enc(INTERVAL, "-1 days +02:00:00").unwrap(),
        iv(7_200_000_000, -1, 0)
    );
    assert_eq!(enc(INTERVAL, "00:00:00").unwrap(), iv(0, 0, 0));
    assert_eq!(
        enc(INTERVAL, "-1 years -2 mons +3 days -00:00:00.000001").unwrap(),
        iv(-1, 3, -14)
    );
    assert_eq!(
        enc(INTERVAL, "-2562047788:00:54.775808").unwrap(),
        iv(i64::MIN, 0, 0)
    );
    for other_style in [
        "1-2 3 4:05:06",
        "@ 1 year 2 mons",
        "P1Y2M3DT4H5M6S",
        "0",
        "1 day 1 day",
        "1 day 1 year",
        "00:00:00 1 day",
        "1 fortnight",
        "",
        "-2562047788:00:54.775809",
    ] {
        assert!(enc(INTERVAL, other_style).is_none(), "{other_style:?}");
    }
}

#[test]
fn times_and_bc_dates() {
    assert_eq!(
        enc(TIME, "24:00:00").unwrap(),
        86_400_000_000i64.to_be_bytes()
    );
    assert_eq!(
        enc(TIMETZ, "01:02:03.5+05:30").unwrap(),
        [
            &3_723_500_000i64.to_be_bytes()[..],
            &(-19_800i32).to_be_bytes()
        ]
        .concat()
    );
    assert_eq!(
        enc(TIMETZ, "00:00:00-15:59:59").unwrap()[8..],
        57_599i32.to_be_bytes()
    );
    // 0001-01-01 is 1999 * 365 + 484 leap days before 2000-01-01, and
    // 1 BC (year 0) is a leap year
    assert_eq!(
        enc(DATE, "0001-01-01").unwrap(),
        (-730_119i32).to_be_bytes()
    );
    assert_eq!(
        enc(DATE, "0001-12-31 BC").unwrap(),
        (-730_120i32).to_be_bytes()
    );
    assert!(enc(DATE, "0001-02-29 BC").is_some());
    assert!(enc(DATE, "0001-02-29").is_none());
    assert_eq!(
        enc(TIMESTAMPTZ, "0001-01-01 00:53:28+00:53:28 BC").unwrap(),
        ((-730_120i64 - 365) * 86_400_000_000).to_be_bytes()
    );
    assert!(enc(TIMESTAMP, "01/02/2000 00:00:00").is_none());
    assert!(enc(TIME, "25:00:00").is_none());
}

#[test]
fn network_addresses() {
    let v6 = |bits: u8, cidr: u8, addr: [u8; 16]| [&[3, bits, cidr, 16][..], &addr].concat();
    let mut one = [0; 16];
    one[15] = 1;
    assert_eq!(enc(INET, "::1").unwrap(), v6(128, 0, one));
    let mut mapped = [0; 16];
    mapped[10..].copy_from_slice(&[0xff, 0xff, 1, 2, 3, 4]);
    assert_eq!(enc(INET, "::ffff:1.2.3.4").unwrap(), v6(128, 0, mapped));
    assert_eq!(
        enc(CIDR, "::ffff:1.2.3.0/120").unwrap(),
        v6(120, 1, {
            let mut m = mapped;
            m[15] = 0;
            m
        })
    );
    assert_eq!(
        enc(INET, "192.168.0.1/24").unwrap(),
        [2, 24, 0, 4, 192, 168, 0, 1]
    );
    assert_eq!(enc(CIDR, "10.0.0.0/8").unwrap(), [2, 8, 1, 4, 10, 0, 0, 0]);
    for bad in [
        "1.2.3.4/33",
        "::1/129",
        "1.2.3",
        "1.2.3.4/",
        "1.2.3.4/+1",
        "x",
    ] {
        assert!(enc(INET, bad).is_none(), "{bad:?}");
    }
    assert_eq!(
        enc(MACADDR, "08:00:2b:01:02:03").unwrap(),
        [8, 0, 0x2b, 1, 2, 3]
    );
    assert!(enc(MACADDR, "08:00:2b:01:02").is_none());
}

#[test]
fn other_scalars() {
    assert_eq!(enc(CHAR, "").unwrap(), [0]);
    assert_eq!(enc(CHAR, "\\377").unwrap(), [0xff]);
    assert!(enc(CHAR, "\\101").is_none());
    assert!(enc(CHAR, "ab").is_none());
    assert_eq!(enc(BIT, "101000001").unwrap(), [0, 0, 0, 9, 0xa0, 0x80]);
    assert_eq!(enc(VARBIT, "").unwrap(), [0, 0, 0, 0]);
    assert!(enc(BIT, "012").is_none());
    assert_eq!(
        enc(MONEY, "-$1,234.56").unwrap(),
        (-123_456i64).to_be_bytes()
    );
    assert_eq!(enc(MONEY, "($0.01)").unwrap(), (-1i64).to_be_bytes());
    assert_eq!(
        enc(MONEY, "-$92,233,720,368,547,758.08").unwrap(),
        i64::MIN.to_be_bytes()
    );
    assert!(enc(MONEY, "1.234,56 €").is_none());
    assert!(enc(MONEY, "$92,233,720,368,547,758.08").is_none());
    assert_eq!(enc(BYTEA, "a\\\\b\\000").unwrap(), b"a\\b\0");
    assert!(enc(BYTEA, "\\400").is_none());
    assert_eq!(enc(XID, "4294967295").unwrap(), [0xff; 4]);
    assert_eq!(
        enc(POINT, "(1.5,-Infinity)").unwrap(),
        [
            1.5f64.to_bits().to_be_bytes(),
            f64::NEG_INFINITY.to_bits().to_be_bytes()
        ]
        .concat()
    );
    assert_eq!(enc(PATH, "[(0,0),(1,1)]").unwrap()[..5], [0, 0, 0, 0, 2]);
    assert_eq!(enc(PATH, "((0,0),(1,1))").unwrap()[..5], [1, 0, 0, 0, 2]);
    assert!(enc(POINT, "(1,2,3)").is_none());
    assert!(enc(LSEG, "[(1,2),(3,4)").is_none());
}

proptest::proptest! {
    /// Whatever a server sends, encoding returns (`None` at worst) and
    /// leaves no partial value behind.
    #[test]
    fn arbitrary_text_never_panics(
        text in "[{}\\[\\]()<>\",\\\\ NULnul0-9a-fx:.+/=$@PYMDTBC-]{0,24}",
        which in 0usize..200,
    ) {
        let oids: Vec<u32> = (0..6000).filter(|&o| supported(o)).collect();
        let oid = oids[which % oids.len()];
        let mut out = vec![7];
        if encode(oid, text.as_bytes(), &mut out).is_none() {
            proptest::prop_assert_eq!(out, vec![7]);
        }
    }
}
