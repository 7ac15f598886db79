//! Scopes (RFC 6749 §3.3): a registry of up to 32 named scopes, carried everywhere as a bit set.
//!
//! A scope string on the wire is a list of space-delimited, case-sensitive scope tokens, each made of
//! `NQCHAR` (`%x21 / %x23-5B / %x5D-7E`). Inside the crate a grant's scopes are a [`ScopeSet`]: bit `i`
//! stands for the `i`-th name of the [`ScopeRegistry`]. Four bytes per grant, and narrowing or widening is a
//! subset test.

use core::fmt;

use crate::error::OAuthError;

/// The most scopes a registry can name (the width of [`ScopeSet`]).
pub const MAX_SCOPES: usize = 32;

/// A set of scopes from a [`ScopeRegistry`], as a bit set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ScopeSet(u32);

impl ScopeSet {
    /// The empty set.
    pub const EMPTY: ScopeSet = ScopeSet(0);

    /// A set from its raw bits (bit `i` = the registry's `i`-th scope).
    pub const fn from_bits(bits: u32) -> Self {
        ScopeSet(bits)
    }

    /// The raw bits.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// True when no scope is in the set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// True when every scope of `self` is in `other`.
    pub const fn is_subset_of(self, other: ScopeSet) -> bool {
        self.0 & !other.0 == 0
    }

    /// True when every scope of `other` is in `self`.
    pub const fn contains(self, other: ScopeSet) -> bool {
        other.is_subset_of(self)
    }

    /// The scopes in both sets.
    pub const fn intersection(self, other: ScopeSet) -> ScopeSet {
        ScopeSet(self.0 & other.0)
    }

    /// The scopes in either set.
    pub const fn union(self, other: ScopeSet) -> ScopeSet {
        ScopeSet(self.0 | other.0)
    }

    /// The indices of the scopes in the set, lowest first.
    pub fn indices(self) -> impl Iterator<Item = usize> {
        (0..MAX_SCOPES).filter(move |i| self.0 & (1 << i) != 0)
    }
}

/// Why a scope registry could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ScopeRegistryError {
    /// More than [`MAX_SCOPES`] names.
    TooMany,
    /// A name is empty or has a character outside `NQCHAR` (or a space).
    InvalidName,
    /// A name appears twice.
    Duplicate,
}

impl fmt::Display for ScopeRegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TooMany => "more than 32 scopes",
            Self::InvalidName => "scope name is empty or not made of NQCHAR",
            Self::Duplicate => "scope name registered twice",
        })
    }
}

impl core::error::Error for ScopeRegistryError {}

/// The names of the scopes this server knows, in bit order.
///
/// ```
/// use oauth2_devices::scope::ScopeRegistry;
/// let scopes = ScopeRegistry::new(&["profile", "email", "sensors:read"]).unwrap();
/// let set = scopes.parse("email profile").unwrap();
/// assert_eq!(set, scopes.set_of(&["profile", "email"]).unwrap());
/// let mut out = heapless::String::<64>::new();
/// scopes.write(set, &mut out).unwrap();
/// assert_eq!(out, "profile email");
/// assert!(scopes.parse("admin").is_err());
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ScopeRegistry {
    names: &'static [&'static str],
}

/// True for a valid scope token (RFC 6749 §3.3: `1*NQCHAR`).
pub fn is_scope_token(token: &str) -> bool {
    !token.is_empty() && token.bytes().all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

impl ScopeRegistry {
    /// A registry without scopes (a provider before `init`).
    pub const EMPTY: Self = Self { names: &[] };

    /// A registry of the given names; bit `i` of a [`ScopeSet`] is `names[i]`.
    pub fn new(names: &'static [&'static str]) -> Result<Self, ScopeRegistryError> {
        if names.len() > MAX_SCOPES {
            return Err(ScopeRegistryError::TooMany);
        }
        for (i, name) in names.iter().enumerate() {
            if !is_scope_token(name) {
                return Err(ScopeRegistryError::InvalidName);
            }
            if names.iter().take(i).any(|n| n == name) {
                return Err(ScopeRegistryError::Duplicate);
            }
        }
        Ok(Self { names })
    }

    /// Every registered scope.
    pub fn all(&self) -> ScopeSet {
        match self.names.len() {
            MAX_SCOPES => ScopeSet(u32::MAX),
            n => ScopeSet((1u32 << n) - 1),
        }
    }

    /// The names, in bit order.
    pub fn names(&self) -> &'static [&'static str] {
        self.names
    }

    /// The name of scope `index`.
    pub fn name(&self, index: usize) -> Option<&'static str> {
        self.names.get(index).copied()
    }

    /// The bit of one scope name.
    pub fn lookup(&self, name: &str) -> Option<ScopeSet> {
        self.names.iter().position(|n| *n == name).map(|i| ScopeSet(1 << i))
    }

    /// The set of the given names, or `None` if one is unknown.
    pub fn set_of(&self, names: &[&str]) -> Option<ScopeSet> {
        names.iter().try_fold(ScopeSet::EMPTY, |acc, n| Some(acc.union(self.lookup(n)?)))
    }

    /// Parses a `scope` parameter: space-delimited tokens, each a registered name.
    ///
    /// An empty string is the empty set. Syntax errors and unknown names are `invalid_scope`
    /// (RFC 6749 §5.2).
    pub fn parse(&self, scope: &str) -> Result<ScopeSet, OAuthError> {
        let mut set = ScopeSet::EMPTY;
        if scope.is_empty() {
            return Ok(set);
        }
        for token in scope.split(' ') {
            if !is_scope_token(token) {
                return Err(OAuthError::invalid_scope("malformed scope"));
            }
            set = set.union(self.lookup(token).ok_or(OAuthError::invalid_scope("unknown scope"))?);
        }
        Ok(set)
    }

    /// Writes the set as a scope string (registry order, single spaces).
    pub fn write<W: fmt::Write>(&self, set: ScopeSet, out: &mut W) -> fmt::Result {
        let mut first = true;
        for i in set.indices() {
            if let Some(name) = self.names.get(i) {
                if !first {
                    out.write_char(' ')?;
                }
                out.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }

    /// The set as a scope string in a fixed-capacity string.
    pub fn to_string<const N: usize>(&self, set: ScopeSet) -> Result<heapless::String<N>, crate::BufferTooSmall> {
        let mut s = heapless::String::new();
        self.write(set, &mut s).map_err(|_| crate::BufferTooSmall)?;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: &[&str] = &["a", "b", "c:d"];

    #[test]
    fn parse_and_write_round_trip() {
        let r = ScopeRegistry::new(NAMES).unwrap();
        let s = r.parse("c:d a").unwrap();
        assert_eq!(s.bits(), 0b101);
        assert_eq!(r.to_string::<16>(s).unwrap(), "a c:d");
        assert_eq!(r.parse("").unwrap(), ScopeSet::EMPTY);
        assert_eq!(r.parse("a a").unwrap().bits(), 1);
    }

    #[test]
    fn syntax_and_unknown_names_are_invalid_scope() {
        let r = ScopeRegistry::new(NAMES).unwrap();
        for bad in ["a  b", " a", "a ", "x", "a\"", "a\\b", "é"] {
            assert_eq!(r.parse(bad).unwrap_err().code, crate::ErrorCode::InvalidScope, "{bad:?}");
        }
    }

    #[test]
    fn registry_validation() {
        assert_eq!(ScopeRegistry::new(&["a", "a"]).unwrap_err(), ScopeRegistryError::Duplicate);
        assert_eq!(ScopeRegistry::new(&["a b"]).unwrap_err(), ScopeRegistryError::InvalidName);
        assert_eq!(ScopeRegistry::new(&[""]).unwrap_err(), ScopeRegistryError::InvalidName);
        static MANY: [&str; 33] = [
            "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16", "17", "18",
            "19", "20", "21", "22", "23", "24", "25", "26", "27", "28", "29", "30", "31", "32",
        ];
        assert_eq!(ScopeRegistry::new(&MANY).unwrap_err(), ScopeRegistryError::TooMany);
        let full = ScopeRegistry::new(&MANY[..32]).unwrap();
        assert_eq!(full.all().bits(), u32::MAX);
        assert!(ScopeSet::from_bits(3).contains(ScopeSet::from_bits(1)));
        assert!(!ScopeSet::from_bits(1).contains(ScopeSet::from_bits(3)));
    }
}
