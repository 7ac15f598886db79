//! Budgets for wrong user-code guesses (RFC 8628 §5.1), per source and globally, in fixed memory.
//!
//! A *source* is whatever the caller can attribute an attempt to: the signed-in user, the peer address.
//! It is stored as an 8-byte keyed hash. Within a fixed window of `window` seconds a source may make
//! `per_source` wrong guesses and all sources together `global`; past that, attempts are refused
//! (rate-limited) until the window ends. Successful look-ups do not refund anything.
//!
//! When every source entry is in use by an unexpired window, a new source is refused: the limiter fails
//! closed rather than forget a source that is guessing.
//!
//! # The bound on guessing
//! With at most `L` live codes (the grant table's capacity) and a user-code space of 20^8, an attacker who
//! controls every source gets at most `global × (⌈T / window⌉ + 1)` wrong guesses during a code lifetime
//! `T`, so the chance of hitting any live code is at most
//! `global × (⌈T / window⌉ + 1) × L / 20^8`. With the defaults (`global` = 32 per 60 s, `T` = 600 s)
//! and `L` = 16, that is 32 × 11 × 16 / 2.56·10^10 ≈ 2.2·10^-7.

use core::num::NonZeroU16;

/// Guess budgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct LimitConfig {
    /// Wrong guesses one source may make per window.
    pub per_source: u16,
    /// Wrong guesses all sources together may make per window.
    pub global: u16,
    /// Window length in seconds.
    pub window: u32,
}

impl Default for LimitConfig {
    fn default() -> Self {
        Self { per_source: 5, global: 32, window: 60 }
    }
}

/// An attempt was refused because a budget is spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RateLimited;

/// 16 bytes; `failures` is never zero (an entry exists only after a failure), which gives `Option<Entry>`
/// a niche and keeps it at 16 bytes too.
#[derive(Debug, Clone, Copy)]
struct Entry {
    key: [u8; 8],
    window_start: u32,
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

    fn live(e: &Entry, now: u32, cfg: &LimitConfig) -> bool {
        now >= e.window_start && now - e.window_start < cfg.window
    }

    /// Whether `source` may make an attempt now.
    pub fn admit(&mut self, now: u32, source: &[u8; 8], cfg: &LimitConfig) -> Result<(), RateLimited> {
        self.roll_global(now, cfg);
        if self.global_failures >= cfg.global {
            return Err(RateLimited);
        }
        let mut has_room = false;
        for e in self.entries.iter() {
            match e {
                Some(e) if e.key == *source => {
                    if Self::live(e, now, cfg) && e.failures.get() >= cfg.per_source {
                        return Err(RateLimited);
                    }
                    return Ok(());
                }
                Some(e) if Self::live(e, now, cfg) => {}
                _ => has_room = true,
            }
        }
        if has_room {
            Ok(())
        } else {
            Err(RateLimited)
        }
    }

    /// Records a wrong guess by `source`.
    pub fn record_failure(&mut self, now: u32, source: &[u8; 8], cfg: &LimitConfig) {
        self.roll_global(now, cfg);
        self.global_failures = self.global_failures.saturating_add(1);
        let fresh = Entry { key: *source, window_start: now, failures: NonZeroU16::MIN };
        if let Some(e) = self.entries.iter_mut().flatten().find(|e| e.key == *source) {
            if Self::live(e, now, cfg) {
                e.failures = e.failures.saturating_add(1);
            } else {
                *e = fresh;
            }
            return;
        }
        if let Some(slot) = self.entries.iter_mut().find(|e| e.as_ref().is_none_or(|e| !Self::live(e, now, cfg))) {
            *slot = Some(fresh);
        }
    }

    /// Sources with a live window (for monitoring).
    pub fn tracked_sources(&self, now: u32, cfg: &LimitConfig) -> usize {
        self.entries.iter().flatten().filter(|e| Self::live(e, now, cfg)).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: LimitConfig = LimitConfig { per_source: 2, global: 5, window: 10 };

    #[test]
    fn per_source_budget_and_window_reset() {
        let mut l = AttemptLimiter::<4>::new();
        let a = [1; 8];
        assert!(l.admit(0, &a, &CFG).is_ok());
        l.record_failure(0, &a, &CFG);
        l.record_failure(1, &a, &CFG);
        assert_eq!(l.admit(2, &a, &CFG), Err(RateLimited));
        assert!(l.admit(2, &[2; 8], &CFG).is_ok());
        assert!(l.admit(10, &a, &CFG).is_ok());
    }

    #[test]
    fn global_budget() {
        let mut l = AttemptLimiter::<8>::new();
        for i in 0..5u8 {
            l.record_failure(3, &[i; 8], &CFG);
        }
        assert_eq!(l.admit(4, &[9; 8], &CFG), Err(RateLimited));
        assert!(l.admit(13, &[9; 8], &CFG).is_ok());
    }

    #[test]
    fn full_table_fails_closed_until_windows_end() {
        let cfg = LimitConfig { global: 100, ..CFG };
        let mut l = AttemptLimiter::<2>::new();
        l.record_failure(0, &[1; 8], &cfg);
        l.record_failure(0, &[2; 8], &cfg);
        assert_eq!(l.admit(1, &[3; 8], &cfg), Err(RateLimited));
        assert!(l.admit(1, &[1; 8], &cfg).is_ok());
        assert!(l.admit(10, &[3; 8], &cfg).is_ok());
        l.record_failure(10, &[3; 8], &cfg);
        assert_eq!(l.tracked_sources(10, &cfg), 1);
    }
}
