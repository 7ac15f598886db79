//! base64url without padding, for the crate's codes and tokens (through the `base64` crate).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// base64url (no padding) into a fixed string; the capacity is sized by the callers' constants.
pub(crate) fn encode_b64<const N: usize>(raw: &[u8]) -> heapless::String<N> {
    let mut buf = [0u8; N];
    let mut out = heapless::String::new();
    if let Ok(n) = URL_SAFE_NO_PAD.encode_slice(raw, &mut buf) {
        if let Some(s) = buf.get(..n).and_then(|b| core::str::from_utf8(b).ok()) {
            let _ = out.push_str(s);
        }
    }
    out
}

/// Decodes base64url without padding (canonical only: padding, stray trailing bits and anything
/// outside the alphabet are refused) into `out`; `None` if malformed or longer than `out`.
///
/// Not constant-time, on purpose: what is decoded here are codes and tokens *presented* to us, whose
/// content their presenter already knows; the secret part of every check is the MAC comparison that
/// follows, and that is constant-time (`subtle`). No stored secret is ever base64-decoded.
pub(crate) fn decode_b64<'o>(s: &str, out: &'o mut [u8]) -> Option<&'o [u8]> {
    let n = URL_SAFE_NO_PAD.decode_slice(s, out).ok()?;
    out.get(..n)
}
