use super::*;

fn decode(payload: &str) -> Result<Reading, DecodeError> {
    Decoder::default().decode(payload.as_bytes(), Some(1_700_000_000_000), 2, 42)
}

fn reason(payload: &str) -> DeadLetterReason {
    decode(payload).unwrap_err().reason
}

#[test]
fn decodes_a_reading_with_origin() {
    let r = decode(r#"{"ts":1700000000500,"value":-3,"extra":[1,{"a":2}],"sensor":"vib","device_id":"press-1"}"#)
        .unwrap();
    assert_eq!(
        r,
        Reading::new("press-1", "vib", 1_700_000_000_500, -3.0, 2, 42)
    );
}

#[test]
fn rfc3339_and_numeric_device_ids() {
    let r = decode(r#"{"device_id":17,"sensor":"t","value":1.5,"ts":"2023-11-14T22:13:20.250Z"}"#)
        .unwrap();
    assert_eq!(r.device.as_str(), "17");
    let serial =
        decode(r#"{"device_id":18446744073709551615,"sensor":"t","value":1,"ts":1}"#).unwrap();
    assert_eq!(serial.device.as_str(), "18446744073709551615");
    assert_eq!(r.time, 1_700_000_000_250);
}

#[test]
fn escaped_names_are_unescaped() {
    let r = decode(r#"{"device_id":"a\"b","sensor":"t","value":1,"ts":1}"#).unwrap();
    assert_eq!(r.device.as_str(), "a\"b");
}

#[test]
fn falls_back_to_the_record_timestamp() {
    let r = decode(r#"{"device_id":"d","sensor":"t","value":1}"#).unwrap();
    assert_eq!(r.time, 1_700_000_000_000);
    let none =
        Decoder::default().decode(br#"{"device_id":"d","sensor":"t","value":1}"#, None, 0, 0);
    assert_eq!(none.unwrap_err().reason, DeadLetterReason::MissingField);
}

#[test]
fn epoch_seconds_format() {
    let config = DecodeConfig {
        time_format: TimeFormat::EpochSeconds,
        time_field: "time".into(),
        ..DecodeConfig::default()
    };
    let r = Decoder::new(config)
        .decode(
            br#"{"device_id":"d","sensor":"t","value":1,"time":1700000000.25}"#,
            None,
            0,
            0,
        )
        .unwrap();
    assert_eq!(r.time, 1_700_000_000_250);
}

/// Both paths on one payload: the fast path's result (`None` if it
/// leaves the payload to serde_json) and serde_json's.
fn both_paths(
    payload: &[u8],
) -> (
    Option<Result<Reading, DecodeError>>,
    Result<Reading, DecodeError>,
) {
    let decoder = Decoder::default();
    let time = Some(1_700_000_000_000);
    let flat = flat_fields(payload, decoder.config()).map(|f| decoder.reading(f, time, 2, 42));
    let general =
        serde_fields(payload, decoder.config()).and_then(|f| decoder.reading(f, time, 2, 42));
    (flat, general)
}

/// Reason and value bits, so that `-0.0` and `0.0` differ.
fn outcome(r: &Result<Reading, DecodeError>) -> Result<(Reading, u64), DeadLetterReason> {
    match r {
        Ok(r) => Ok((r.clone(), r.value.to_bits())),
        Err(e) => Err(e.reason),
    }
}

#[test]
fn the_fast_path_agrees_with_serde_json() {
    // (payload, whether the fast path takes it)
    #[rustfmt::skip]
    let cases: &[(&[u8], bool)] = &[
        (br#"{"device_id":"dev-00042","sensor":"temperature","ts":1700000000000,"value":61.23}"#, true),
        (b" {\t\"device_id\" : \"d\" ,\n\"sensor\":\"t\",\"value\":1,\"ts\":5}\r\n ", true),
        (br#"{"device_id":"d","sensor":"t","value":1,"ts":5,"value":2}"#, true),
        (br#"{"device_id":"d","sensor":"t","value":-0,"ts":5}"#, true),
        (br#"{"device_id":"d","sensor":"t","value":-0.0,"ts":5}"#, true),
        (br#"{"device_id":"d","sensor":"t","value":0.5,"ts":5}"#, true),
        (br#"{"device_id":"d","sensor":"t","value":-12.000000000001,"ts":5}"#, true),
        (br#"{"device_id":"d","sensor":"t","value":123456789012345.6,"ts":5}"#, false),
        (br#"{"device_id":"d","sensor":"t","value":1e3,"ts":5}"#, false),
        (br#"{"device_id":"d","sensor":"t","value":1.5E-3,"ts":5}"#, false),
        (br#"{"device_id":-9223372036854775808,"sensor":"t","value":1,"ts":5}"#, true),
        (br#"{"device_id":-9223372036854775809,"sensor":"t","value":1,"ts":5}"#, true),
        (br#"{"device_id":9999999999999999999,"sensor":"t","value":1,"ts":5}"#, true),
        (br#"{"device_id":99999999999999999999,"sensor":"t","value":1,"ts":5}"#, false),
        (br#"{"device_id":"","sensor":"t","value":1,"ts":5}"#, true),
        (br#"{"device_id":"d","sensor":"t","value":"1.5","ts":5}"#, true),
        (br#"{"device_id":"d","sensor":"t","value":"inf","ts":5}"#, true),
        (br#"{"device_id":"d","sensor":"t","value":1,"ts":"2023-11-14T22:13:20.250Z"}"#, true),
        (br#"{"device_id":"d","sensor":"t","value":1,"ts":1700000000000.4}"#, true),
        (br#"{"device_id":"d","sensor":"t","value":1,"ts":18446744073709551615}"#, false),
        (br#"{"device_id":"d","sensor":"t","value":1,"ts":-5}"#, true),
        (br#"{"device_id":"d","sensor":"t","value":1}"#, true),
        (br#"{"device_id":"d","sensor":"t"}"#, true),
        (b"{}", true),
        (b" { } ", true),
        ("{\"device_id\":\"f\u{f6}rde\",\"sensor\":\"\u{b0}C\",\"value\":1,\"ts\":5}".as_bytes(), true),
        (br#"{"device_id":"a\"b","sensor":"t","value":1,"ts":5}"#, false),
        (br#"{"device_id":"d","sensor":"t","value":1,"ts":5,"extra":[1,{"a":2}]}"#, false),
        (br#"{"device_id":"d","sensor":"t","value":null,"ts":5}"#, false),
        (br#"{"device_id":true,"sensor":"t","value":1,"ts":5}"#, false),
        (br#"{"device_id":"d","sensor":"t","value":NaN,"ts":5}"#, false),
        (br#"{"device_id":"d","sensor":"t","value":01,"ts":5}"#, false),
        (br#"{"device_id":"d","sensor":"t","value":1.,"ts":5}"#, false),
        (br#"{"device_id":"d","sensor":"t","value":-,"ts":5}"#, false),
        (br#"{"device_id":"d","sensor":"t","value":+1,"ts":5}"#, false),
        (br#"{"device_id":"d","sensor":"t","value":1x,"ts":5}"#, false),
        (br#"{"device_id":"d","sensor":"t","value":1,"ts":5,}"#, false),
        (br#"{"device_id":"d","sensor":"t","value":1,"ts":5} x"#, false),
        (br#"{"device_id":"d","sensor":"t","value":1,"ts":5"#, false),
        (br#"{"device_id":"d","sensor" "t","value":1,"ts":5}"#, false),
        (br#"{"device_id":"d","sensor":"t","value":1 "ts":5}"#, false),
        (br#"{"device_id":"d","sensor":"t","value":1,"ts":5}{}"#, false),
        (b"{\"device_id\":\"a\tb\",\"sensor\":\"t\",\"value\":1,\"ts\":5}", false),
        (b"{\"device_id\":\"\xff\",\"sensor\":\"t\",\"value\":1,\"ts\":5}", false),
        (b"{\"x\xff\":1,\"device_id\":\"d\",\"sensor\":\"t\",\"value\":1,\"ts\":5}", false),
        (b"{\"device_id\":\"d\",\"sensor\":\"t\",\"value\":1,\"ts\":5}\x0c", false),
        (b"{\"device_id\":\"d\",\"sensor\":\"t\",\"value\":1,\"ts\":5,\"x\":\"\xc3\"}", false),
        (b"{\"device_id\":\"d\",\"sensor\":\"t\",\"value\":1,\"ts\":5\xc2\xa0}", false),
    ];
    for (payload, fast) in cases {
        let text = String::from_utf8_lossy(payload);
        let (flat, general) = both_paths(payload);
        assert_eq!(flat.is_some(), *fast, "fast path taken: {text}");
        if let Some(flat) = flat {
            assert_eq!(outcome(&flat), outcome(&general), "{text}");
        }
    }
}

/// Seeded numbers of every shape: the fast path reads each exactly as
/// serde_json does (the same bits), or leaves it to serde_json.
#[test]
fn the_fast_path_reads_numbers_as_serde_json_does() {
    for seed in 1..=20u64 {
        let mut next = crate::seeded(seed);
        let (mut fast, mut total) = (0, 0);
        for _ in 0..2_000 {
            let sign = if next(3) == 0 { "-" } else { "" };
            let int: String = (0..1 + next(20))
                .map(|_| char::from(b'0' + next(10) as u8))
                .collect();
            let int = int.trim_start_matches('0');
            let int = if int.is_empty() { "0" } else { int };
            let frac: String = match next(3) {
                0 => String::new(),
                _ => std::iter::once('.')
                    .chain((0..1 + next(18)).map(|_| char::from(b'0' + next(10) as u8)))
                    .collect(),
            };
            let number = format!("{sign}{int}{frac}");
            let payload = format!(r#"{{"device_id":"d","sensor":"t","value":{number},"ts":5}}"#);
            let (flat, general) = both_paths(payload.as_bytes());
            total += 1;
            if let Some(flat) = flat {
                fast += 1;
                assert_eq!(outcome(&flat), outcome(&general), "seed {seed}: {number}");
            }
        }
        assert!(
            fast * 3 > total,
            "seed {seed}: the fast path took {fast} of {total}"
        );
    }
}

#[test]
fn bad_records_get_their_reason() {
    use DeadLetterReason::*;
    let cases = [
        (r#"{"device_id":"d","sensor":"t","value":1"#, MalformedJson),
        (
            r#"{"device_id":"d","sensor":"t","value":NaN,"ts":1}"#,
            MalformedJson,
        ),
        ("[1,2]", MalformedJson),
        (r#"{"device_id":"d","value":1,"ts":1}"#, MissingField),
        (
            r#"{"device_id":"d","sensor":"t","value":"abc","ts":1}"#,
            InvalidField,
        ),
        (
            r#"{"device_id":"d","sensor":"t","value":"NaN","ts":1}"#,
            NonFiniteValue,
        ),
        (
            r#"{"device_id":"d","sensor":"t","value":null,"ts":1}"#,
            InvalidField,
        ),
        (
            r#"{"device_id":true,"sensor":"t","value":1,"ts":1}"#,
            InvalidField,
        ),
        (
            r#"{"device_id":"d","sensor":"t","value":1,"ts":"yesterday"}"#,
            InvalidField,
        ),
        (
            r#"{"device_id":"d","sensor":"t","value":1,"ts":-5}"#,
            AbsurdTimestamp,
        ),
        // Year 2100, far ahead of the record timestamp (2023).
        (
            r#"{"device_id":"d","sensor":"t","value":1,"ts":4102444800000}"#,
            AbsurdTimestamp,
        ),
        ("\u{1}garbage", MalformedJson),
    ];
    for (payload, want) in cases {
        assert_eq!(reason(payload), want, "{payload}");
    }
}
