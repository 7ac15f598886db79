//! `application/x-www-form-urlencoded` decoding (the body of every OAuth request), in place and bounded.
//!
//! The body buffer is decoded where it lies (percent-decoding only ever shortens), so a request costs no
//! memory beyond its own bytes and a fixed array of `N` name/value slices. The rules, from the WHATWG URL
//! standard's form parsing and RFC 6749 §3.1:
//! - `+` is a space and `%XX` a byte; a `%` not followed by two hex digits is an error (not passed through);
//! - names and values must be UTF-8 after decoding;
//! - a parameter sent without a value is treated as omitted;
//! - a parameter sent twice is an error (`invalid_request`), as is a body with more than `N` parameters.

use core::fmt;

use crate::error::OAuthError;

/// Why a form body was rejected. Every variant maps to `invalid_request`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum FormError {
    /// More parameters than the decoder has room for.
    TooManyParameters,
    /// A `%` not followed by two hexadecimal digits.
    BadPercentEncoding,
    /// A name or value is not UTF-8 after decoding.
    NotUtf8,
    /// A parameter appears more than once (RFC 6749 §3.1).
    DuplicateParameter,
}

impl FormError {
    const fn description(self) -> &'static str {
        match self {
            Self::TooManyParameters => "too many parameters",
            Self::BadPercentEncoding => "bad percent-encoding",
            Self::NotUtf8 => "parameter is not UTF-8",
            Self::DuplicateParameter => "parameter repeated",
        }
    }
}

impl fmt::Display for FormError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

impl core::error::Error for FormError {}

impl From<FormError> for OAuthError {
    fn from(e: FormError) -> Self {
        OAuthError::invalid_request(e.description())
    }
}

/// A decoded form: up to `N` parameters borrowed from the (decoded in place) body.
///
/// ```
/// use oauth2_devices::form::{Form, FormError};
/// let mut body = *b"client_id=tv%2D1&scope=a+b&empty=";
/// let form = Form::<8>::parse(&mut body).unwrap();
/// assert_eq!(form.get("client_id"), Some("tv-1"));
/// assert_eq!(form.get("scope"), Some("a b"));
/// assert_eq!(form.get("empty"), None); // sent without a value = omitted
/// let mut dup = *b"a=1&a=2";
/// assert_eq!(Form::<8>::parse(&mut dup).unwrap_err(), FormError::DuplicateParameter);
/// ```
#[derive(Debug)]
pub struct Form<'a, const N: usize> {
    pairs: heapless::Vec<(&'a str, &'a str), N>,
}

impl<'a, const N: usize> Form<'a, N> {
    /// Decodes `body` in place and indexes its parameters.
    pub fn parse(body: &'a mut [u8]) -> Result<Self, FormError> {
        let mut pairs: heapless::Vec<(&'a str, &'a str), N> = heapless::Vec::new();
        let mut rest: &'a mut [u8] = body;
        while !rest.is_empty() {
            let end = rest.iter().position(|&b| b == b'&').unwrap_or(rest.len());
            let (segment, tail) = core::mem::take(&mut rest).split_at_mut(end);
            rest = tail.get_mut(1..).unwrap_or_default();
            if segment.is_empty() {
                continue;
            }
            let eq = segment.iter().position(|&b| b == b'=').unwrap_or(segment.len());
            let (name, value) = segment.split_at_mut(eq);
            let value = value.get_mut(1..).unwrap_or_default();
            let name = decode_in_place(name)?;
            let value = decode_in_place(value)?;
            if value.is_empty() || name.is_empty() {
                continue;
            }
            if pairs.iter().any(|(n, _)| *n == name) {
                return Err(FormError::DuplicateParameter);
            }
            pairs.push((name, value)).map_err(|_| FormError::TooManyParameters)?;
        }
        Ok(Self { pairs })
    }

    /// The value of a parameter, if it was sent with a value.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }

    /// Every parameter, in the order sent.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        self.pairs.iter().copied()
    }

    /// The number of parameters.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// True when no parameter was sent.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent- and plus-decodes `buf` in place and returns the decoded prefix as UTF-8.
pub fn decode_in_place(buf: &mut [u8]) -> Result<&str, FormError> {
    // Most values (client ids, codes, tokens) have nothing to decode: then only UTF-8 needs checking and
    // nothing is rewritten. Otherwise the bytes before the first `%` or `+` stay where they are, so
    // decoding starts there.
    let Some(first) = buf.iter().position(|&b| b == b'%' || b == b'+') else {
        let plain: &[u8] = buf;
        return core::str::from_utf8(plain).map_err(|_| FormError::NotUtf8);
    };
    let mut r = first;
    let mut w = first;
    while let Some(&b) = buf.get(r) {
        let out = match b {
            b'+' => {
                r += 1;
                b' '
            }
            b'%' => {
                let hi = buf.get(r + 1).copied().and_then(hex);
                let lo = buf.get(r + 2).copied().and_then(hex);
                r += 3;
                match (hi, lo) {
                    (Some(hi), Some(lo)) => (hi << 4) | lo,
                    _ => return Err(FormError::BadPercentEncoding),
                }
            }
            _ => {
                r += 1;
                b
            }
        };
        // w < r always holds, so this index is in bounds.
        if let Some(slot) = buf.get_mut(w) {
            *slot = out;
        }
        w += 1;
    }
    let decoded: &[u8] = buf;
    core::str::from_utf8(decoded.get(..w).unwrap_or_default()).map_err(|_| FormError::NotUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse<const N: usize>(
        s: &str,
    ) -> Result<heapless::Vec<(heapless::String<32>, heapless::String<32>), N>, FormError> {
        let mut buf = [0u8; 128];
        buf[..s.len()].copy_from_slice(s.as_bytes());
        let form = Form::<N>::parse(&mut buf[..s.len()])?;
        Ok(form.iter().map(|(n, v)| (n.try_into().unwrap(), v.try_into().unwrap())).collect())
    }

    #[test]
    fn decodes_percent_and_plus() {
        let v = parse::<4>("a=%41%62+c&b%20x=%e2%82%ac").unwrap();
        assert_eq!(v[0].0, "a");
        assert_eq!(v[0].1, "Ab c");
        assert_eq!(v[1].0, "b x");
        assert_eq!(v[1].1, "€");
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(parse::<4>("a=%4").unwrap_err(), FormError::BadPercentEncoding);
        assert_eq!(parse::<4>("a=%zz").unwrap_err(), FormError::BadPercentEncoding);
        assert_eq!(parse::<4>("a=%").unwrap_err(), FormError::BadPercentEncoding);
        assert_eq!(parse::<4>("a=%ff").unwrap_err(), FormError::NotUtf8);
        assert_eq!(parse::<4>("a=1&b=2&a=3").unwrap_err(), FormError::DuplicateParameter);
        assert_eq!(parse::<2>("a=1&b=2&c=3").unwrap_err(), FormError::TooManyParameters);
    }

    #[test]
    fn empty_values_and_segments_are_omitted() {
        let v = parse::<4>("&&a=&b&=x&c=1&").unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].0, "c");
        assert!(parse::<4>("").unwrap().is_empty());
        // A value-less repeat is not a duplicate: it counts as omitted.
        assert_eq!(parse::<4>("a=&a=1").unwrap().len(), 1);
    }

    #[test]
    fn equals_in_value_is_kept() {
        let v = parse::<4>("a=b=c").unwrap();
        assert_eq!(v[0].1, "b=c");
    }
}
