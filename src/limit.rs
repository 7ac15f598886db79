//! Budgets for failed attempts, per source and globally, in fixed memory: wrong user codes (RFC 8628
//! §5.1), wrong client secrets and failed sign-ins on the verification page.
//!
//! A *source* is whatever the caller can attribute an attempt to: the signed-in user, the peer address.
//! It is stored as an 8-byte keyed hash.
//!
//! # Per source: a graduated back-off
//! A source may fail `per_source` times freely; after that each further attempt must wait, after its
//! last failure, 1 s, then 2 s, 4 s, … up to `max_delay` seconds. A success refunds nothing, and a
//! source that stays quiet for `window` seconds is forgotten. So a person who mistypes their own code
//! a few times waits a few seconds, never a minute, while a guesser from one source is held to about
//! one attempt per `max_delay`.
//!
//! # Globally: a fixed window
//! All sources together may fail `global` times per `window` seconds; past that every attempt is
//! refused until the window ends. This is what bounds guessing by an attacker who controls many
//! sources (see below). `global = u16::MAX` turns it off, as for client secrets and sign-ins, where a
//! global budget would let anyone lock every client or user out.
//!
//! # A full table
//! When every entry holds a source, a new source takes the entry of the source that failed longest ago
//! (the least recently failed): a fresh source is never refused for lack of room. Eviction forgets a
//! back-off, so an attacker who cycles through more sources than the table holds gets `per_source`
//! free attempts per source each time; the global budget is what bounds that.
//!
//! # The bound on guessing a user code
//! With at most `L` live codes (the grant table's capacity) and a user-code space of 20^8, an attacker
//! who controls every source gets at most `global × (⌈T / window⌉ + 1)` wrong guesses during a code
//! lifetime `T`, so the chance of hitting any live code is at most
//! `global × (⌈T / window⌉ + 1) × L / 20^8` ([`guess_bound`]). It grows with `L`: the shipped
//! configurations' figures are in the crate docs ([`crate::policy`]).

use core::num::NonZeroU16;

use crate::code::USER_CODE_SPACE;

/// Attempt budgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct LimitConfig {
    /// Failures a source may make before its back-off starts.
    pub per_source: u16,
    /// Failures all sources together may make per window (`u16::MAX`: no global budget).
    pub global: u16,
    /// The global window, and how long a quiet source is remembered, in seconds.
    pub window: u32,
    /// The longest back-off, in seconds.
    pub max_delay: u32,
}

impl LimitConfig {
    /// User codes: 5 free wrong codes per source, then a back-off up to 30 s; 32 wrong codes per 60 s
    /// in all.
    pub const USER_CODES: Self = Self { per_source: 5, global: 32, window: 60, max_delay: 30 };
    /// Client secrets and sign-ins: 5 free failures per source, then a back-off up to 60 s; no global
    /// budget (it would let one attacker lock out every client and every user).
    pub const AUTHENTICATION: Self = Self { per_source: 5, global: u16::MAX, window: 600, max_delay: 60 };

    /// The back-off before a source's next attempt after `failures` failures.
    pub const fn delay(&self, failures: u16) -> u32 {
        if failures < self.per_source {
            return 0;
        }
        let steps = failures - self.per_source;
        let d = if steps >= 31 { u32::MAX } else { 1u32 << steps };
        if d < self.max_delay {
            d
        } else {
            self.max_delay
        }
    }
}

impl Default for LimitConfig {
    fn default() -> Self {
        Self::USER_CODES
    }
}

/// The bound on the chance that guessing hits one of `live_codes` live user codes during a code
/// lifetime of `lifetime` seconds, under `cfg` (see the module docs). `None` if there is no global
/// budget (then nothing bounds it).
pub fn guess_bound(cfg: &LimitConfig, lifetime: u32, live_codes: usize) -> Option<f64> {
    if cfg.global == u16::MAX || cfg.window == 0 {
        return None;
    }
    let windows = u64::from(lifetime.div_ceil(cfg.window)) + 1;
    let guesses = u64::from(cfg.global) * windows;
    Some(guesses as f64 * live_codes as f64 / USER_CODE_SPACE as f64)
}

/// An attempt was refused because a budget is spent; retry after `retry_after` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RateLimited {
    /// Seconds until an attempt would be admitted (at least 1).
    pub retry_after: u32,
}

/// 16 bytes; `failures` is never zero (an entry exists only after a failure), which gives `Option<Entry>`
/// a niche and keeps it at 16 bytes too.
#[derive(Debug, Clone, Copy)]
struct Entry {
    key: [u8; 8],
    last_failure: u32,
    failures: NonZeroU16,
}

/// Failure counters for `S` sources plus a global one.
#[derive(Debug, Clone)]
pub struct AttemptLimiter<const S: usize> {
    entries: [Option<Entry>; S],
    global_start: u32,
    global_failures: u16,
}

impl<const S: usize> Default for AttemptLimiter<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const S: usize> AttemptLimiter<S> {
    /// No failures recorded.
    pub const fn new() -> Self {
        Self { entries: [None; S], global_start: 0, global_failures: 0 }
    }

    fn roll_global(&mut self, now: u32, cfg: &LimitConfig) {
        if now.saturating_sub(self.global_start) >= cfg.window || now < self.global_start {
            self.global_start = now;
            self.global_failures = 0;
        }
    }

    /// Remembered: failed within the last `window` seconds.
    fn live(e: &Entry, now: u32, cfg: &LimitConfig) -> bool {
        now >= e.last_failure && now - e.last_failure < cfg.window
    }

    /// Whether `source` may make an attempt now.
    pub fn admit(&mut self, now: u32, source: &[u8; 8], cfg: &LimitConfig) -> Result<(), RateLimited> {
        self.roll_global(now, cfg);
        if cfg.global != u16::MAX && self.global_failures >= cfg.global {
            let left = cfg.window.saturating_sub(now.saturating_sub(self.global_start));
            return Err(RateLimited { retry_after: left.max(1) });
        }
        let Some(e) = self.entries.iter().flatten().find(|e| e.key == *source && Self::live(e, now, cfg)) else {
            return Ok(());
        };
        let ready = e.last_failure.saturating_add(cfg.delay(e.failures.get()));
        if now < ready {
            return Err(RateLimited { retry_after: ready - now });
        }
        Ok(())
    }

    /// Records a failed attempt by `source`.
    pub fn record_failure(&mut self, now: u32, source: &[u8; 8], cfg: &LimitConfig) {
        self.roll_global(now, cfg);
        self.global_failures = self.global_failures.saturating_add(1);
        let fresh = Entry { key: *source, last_failure: now, failures: NonZeroU16::MIN };
        if let Some(e) = self.entries.iter_mut().flatten().find(|e| e.key == *source) {
            *e = if Self::live(e, now, cfg) {
                Entry { last_failure: now, failures: e.failures.saturating_add(1), ..*e }
            } else {
                fresh
            };
            return;
        }
        // A free or forgotten entry, else the one that failed longest ago.
        let mut pick: Option<(usize, u32)> = None;
        for (i, e) in self.entries.iter().enumerate() {
            let age = match e {
                Some(e) if Self::live(e, now, cfg) => now.saturating_sub(e.last_failure),
                _ => u32::MAX,
            };
            if pick.is_none_or(|(_, best)| age > best) {
                pick = Some((i, age));
            }
        }
        if let Some(slot) = pick.and_then(|(i, _)| self.entries.get_mut(i)) {
            *slot = Some(fresh);
        }
    }

    /// Sources remembered (for monitoring).
    pub fn tracked_sources(&self, now: u32, cfg: &LimitConfig) -> usize {
        self.entries.iter().flatten().filter(|e| Self::live(e, now, cfg)).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: LimitConfig = LimitConfig { per_source: 2, global: 5, window: 10, max_delay: 4 };

    #[test]
    fn graduated_back_off_per_source() {
        let cfg = LimitConfig { global: u16::MAX, window: 100, ..CFG };
        let mut l = AttemptLimiter::<4>::new();
        let a = [1; 8];
        l.record_failure(0, &a, &cfg);
        assert!(l.admit(0, &a, &cfg).is_ok(), "within the free failures");
        l.record_failure(0, &a, &cfg);
        // Two failures: the next attempt waits 1 s, then 2, 4, and never more than 4.
        assert_eq!(l.admit(0, &a, &cfg), Err(RateLimited { retry_after: 1 }));
        assert!(l.admit(1, &a, &cfg).is_ok());
        l.record_failure(1, &a, &cfg);
        assert_eq!(l.admit(2, &a, &cfg), Err(RateLimited { retry_after: 1 }));
        assert!(l.admit(3, &a, &cfg).is_ok());
        l.record_failure(3, &a, &cfg);
        assert_eq!(l.admit(3, &a, &cfg), Err(RateLimited { retry_after: 4 }));
        l.record_failure(7, &a, &cfg);
        assert_eq!(l.admit(7, &a, &cfg), Err(RateLimited { retry_after: 4 }), "capped at max_delay");
        // Another source is not affected.
        assert!(l.admit(7, &[2; 8], &cfg).is_ok());
        // A source quiet for a whole window is forgotten.
        assert!(l.admit(107, &a, &cfg).is_ok());
        l.record_failure(107, &a, &cfg);
        assert!(l.admit(107, &a, &cfg).is_ok(), "forgotten, so its first failure again");
    }

    #[test]
    fn global_budget() {
        let mut l = AttemptLimiter::<8>::new();
        for i in 0..5u8 {
            l.record_failure(3, &[i; 8], &CFG);
        }
        // The window opened at 0 and ends at 10.
        assert_eq!(l.admit(4, &[9; 8], &CFG), Err(RateLimited { retry_after: 6 }));
        assert!(l.admit(9, &[9; 8], &CFG).is_err(), "not before the window ends");
        assert!(l.admit(10, &[9; 8], &CFG).is_ok());
    }

    #[test]
    fn a_full_table_evicts_the_oldest_failure_and_never_refuses_a_new_source() {
        let cfg = LimitConfig { global: u16::MAX, per_source: 1, ..CFG };
        let mut l = AttemptLimiter::<2>::new();
        for _ in 0..2 {
            l.record_failure(0, &[1; 8], &cfg);
            l.record_failure(1, &[2; 8], &cfg);
        }
        assert!(l.admit(1, &[3; 8], &cfg).is_ok());
        l.record_failure(2, &[3; 8], &cfg);
        assert_eq!(l.tracked_sources(2, &cfg), 2);
        // Source 1 failed longest ago and was forgotten; 2 and 3 still wait.
        assert!(l.admit(2, &[1; 8], &cfg).is_ok());
        assert!(l.admit(2, &[2; 8], &cfg).is_err());
        assert!(l.admit(2, &[3; 8], &cfg).is_err());
    }

    #[test]
    fn delays() {
        let c = LimitConfig { per_source: 3, global: 1, window: 1, max_delay: 30 };
        let d: [u32; 10] = core::array::from_fn(|i| c.delay(i as u16));
        assert_eq!(d, [0, 0, 0, 1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(c.delay(u16::MAX), 30);
    }
}
