//! `Form::<16>::parse` on arbitrary bytes, checked against an independent reference decoder, plus a
//! round trip: arbitrary (name, value) pairs, percent-encoded in arbitrary (valid) ways, parse back to
//! exactly those pairs.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use oauth2_devices::form::{decode_in_place, Form, FormError};

const N: usize = 16;

/// The decoding rules of `form.rs`'s docs, written out plainly with allocation.
fn reference_decode(raw: &[u8]) -> Result<String, FormError> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
                match (hex(raw.get(i + 1)), hex(raw.get(i + 2))) {
                    (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
                    _ => return Err(FormError::BadPercentEncoding),
                }
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| FormError::NotUtf8)
}

fn reference_parse(body: &[u8]) -> Result<Vec<(String, String)>, FormError> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for segment in body.split(|&b| b == b'&') {
        if segment.is_empty() {
            continue;
        }
        let (name, value) = match segment.iter().position(|&b| b == b'=') {
            Some(eq) => (&segment[..eq], &segment[eq + 1..]),
            None => (segment, &[][..]),
        };
        let name = reference_decode(name)?;
        let value = reference_decode(value)?;
        if name.is_empty() || value.is_empty() {
            continue;
        }
        if pairs.iter().any(|(n, _)| *n == name) {
            return Err(FormError::DuplicateParameter);
        }
        if pairs.len() == N {
            return Err(FormError::TooManyParameters);
        }
        pairs.push((name, value));
    }
    Ok(pairs)
}

fn check_parse(body: &[u8]) {
    let expected = reference_parse(body);
    let mut buf = body.to_vec();
    let got = Form::<N>::parse(&mut buf);
    match (&got, &expected) {
        (Ok(form), Ok(pairs)) => {
            let got: Vec<(&str, &str)> = form.iter().collect();
            assert_eq!(got.len(), pairs.len(), "pair count differs for {body:?}");
            assert_eq!(form.len(), got.len());
            assert_eq!(form.is_empty(), got.is_empty());
            let mut decoded = 0;
            for (i, ((n, v), (rn, rv))) in got.iter().zip(pairs).enumerate() {
                assert_eq!((*n, *v), (rn.as_str(), rv.as_str()), "pair {i} differs for {body:?}");
                assert!(!n.is_empty() && !v.is_empty(), "empty name or value kept");
                assert!(got[..i].iter().all(|(m, _)| m != n), "duplicate name {n:?} accepted");
                assert_eq!(form.get(n), Some(*v));
                decoded += n.len() + v.len();
            }
            assert!(decoded <= body.len(), "decoded {decoded} bytes from {} input bytes", body.len());
            assert!(form.len() <= N);
        }
        (Err(e), Err(r)) => assert_eq!(e, r, "error differs for {body:?}"),
        _ => panic!("parse {got:?} but reference {expected:?} for {body:?}"),
    }
    // The value-level decoder alone: the same result as the reference, and never longer than its input.
    let mut buf = body.to_vec();
    let got = decode_in_place(&mut buf).map(|s| s.to_owned());
    assert_eq!(got, reference_decode(body));
    if let Ok(s) = got {
        assert!(s.len() <= body.len());
    }
}

/// How to write one byte: any spelling the decoder must accept for it.
fn encode_byte(u: &mut Unstructured<'_>, b: u8, out: &mut Vec<u8>) -> arbitrary::Result<()> {
    let must_escape = matches!(b, b'%' | b'&' | b'=' | b'+');
    match u.int_in_range(0..=3u8)? {
        0 if !must_escape => out.push(b),
        1 if b == b' ' => out.push(b'+'),
        2 => out.extend_from_slice(format!("%{b:02x}").as_bytes()),
        _ => out.extend_from_slice(format!("%{b:02X}").as_bytes()),
    }
    Ok(())
}

fn round_trip(u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
    let count = u.int_in_range(0..=N)?;
    let mut pairs: Vec<(String, String)> = Vec::new();
    for _ in 0..count {
        let name = String::arbitrary(u)?;
        let value = String::arbitrary(u)?;
        if name.is_empty() || value.is_empty() || pairs.iter().any(|(n, _)| *n == name) {
            continue;
        }
        pairs.push((name, value));
    }
    let mut body = Vec::new();
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            // One or more separators, and sometimes an empty segment, which is skipped.
            body.push(b'&');
            if u.ratio(1, 8)? {
                body.push(b'&');
            }
        }
        for &b in name.as_bytes() {
            encode_byte(u, b, &mut body)?;
        }
        body.push(b'=');
        for &b in value.as_bytes() {
            encode_byte(u, b, &mut body)?;
        }
    }
    if u.ratio(1, 4)? {
        // A trailing parameter without a value counts as omitted.
        body.extend_from_slice(b"&omitted=");
    }
    let mut buf = body.clone();
    let form = Form::<N>::parse(&mut buf).unwrap_or_else(|e| panic!("round trip refused ({e:?}): {body:?}"));
    let got: Vec<(&str, &str)> = form.iter().collect();
    let want: Vec<(&str, &str)> = pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    assert_eq!(got, want, "round trip of {body:?}");
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    // Every input is both a body to parse and the entropy for one round trip.
    check_parse(data);
    let _ = round_trip(&mut Unstructured::new(data));
});
