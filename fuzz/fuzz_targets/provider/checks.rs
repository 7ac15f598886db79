//! The checks after every operation: the provider's tables against the model, the bearer sweep, the
//! guess budgets.

use super::model::*;
use super::*;

impl Harness {
    // ----- the checks after every operation -----

    pub(crate) fn check_tables(&self) {
        let now = self.seen();
        assert_eq!(self.p.clock(), self.clock.get(), "provider clock");
        assert_eq!(self.p.durable_version(), self.durable, "durable version");

        let table: Vec<_> = grant_table(&self.p).collect();
        for (i, (_, a)) in table.iter().enumerate() {
            for (_, b) in &table[..i] {
                assert_ne!(a.user_code, b.user_code, "two grants share a user code: {table:?}");
            }
        }
        let model: Vec<&MGrant> = self.grants.iter().filter(|g| g.in_table).collect();
        assert_eq!(table.len(), model.len(), "grant table {table:?} vs model {model:?}");
        for (slot, g) in &table {
            let m = model.iter().find(|m| m.slot == *slot).unwrap_or_else(|| panic!("slot {slot} not in model"));
            assert_eq!(g.serial, m.serial, "slot {slot}");
            assert_eq!(g.user_code, m.user_code, "slot {slot}");
            assert_eq!(g.client, m.client, "slot {slot}");
            assert_eq!(g.expires_at, m.expires_at, "slot {slot}");
            assert_eq!(g.state, state_of(m), "slot {slot}: {g:?} vs {m:?}");
            assert_eq!(g.scopes.bits(), scopes_of(m), "slot {slot}: {g:?} vs {m:?}");
            assert_eq!(g.interval, m.interval, "slot {slot}");
            assert_eq!(g.last_poll, m.last_poll, "slot {slot}");
            if let MState::Approved { user, .. } = m.state {
                assert_eq!(g.user, user);
            }
        }

        let table: Vec<_> = family_table(&self.p).collect();
        let model: Vec<&MFamily> = self.families.iter().filter(|f| f.in_table).collect();
        assert_eq!(table.len(), model.len(), "family table {table:?} vs model {model:?}");
        for f in &table {
            let m = model
                .iter()
                .find(|m| m.slot == f.slot)
                .unwrap_or_else(|| panic!("family slot {} not in model", f.slot));
            assert_eq!(
                (f.serial, f.expires_at, f.user, f.scopes.bits(), f.counter, f.client, f.refresh),
                (m.serial, m.expires_at, m.user, m.scopes, m.counter, m.client, m.refresh),
                "family slot {}",
                f.slot
            );
        }

        let live_grants = self.grants.iter().filter(|g| g.in_table && now < g.expires_at).count();
        assert_eq!(self.p.live_grants(u64::from(now)), live_grants);
        self.observe();
        assert!(live_grants <= GRANT_SLOTS);
        let live_families = self.families.iter().filter(|f| self.live_family(f, now)).count();
        assert_eq!(self.p.live_families(u64::from(now)), live_families);
        assert!(live_families <= FAMILY_SLOTS);
    }

    /// Every recent access token: exactly the predicted bearer outcome.
    pub(crate) fn sweep_bearer(&self) {
        let mut checked = 0;
        for f in self.families.iter().rev() {
            for a in f.access.iter().rev().take(2) {
                self.check_known_bearer(f, a, 0, Some(&format!("Bearer {}", a.text)));
                checked += 1;
            }
            if checked >= 16 {
                break;
            }
        }
    }

    pub(crate) fn expected_bearer(&self, f: &MFamily, a: &MAccess, required: u32) -> Result<TokenInfo, BearerError> {
        let now = self.seen();
        if !self.valid(a.key) {
            return Err(BearerError::Invalid);
        }
        if now >= a.expires_at {
            return Err(BearerError::Expired);
        }
        if !f.in_table || now >= f.expires_at {
            return Err(BearerError::Revoked);
        }
        if required & !a.scopes != 0 {
            return Err(BearerError::InsufficientScope);
        }
        Ok(TokenInfo {
            client: f.client,
            user: f.user,
            scopes: ScopeSet::from_bits(a.scopes),
            expires_at: a.expires_at,
            serial: f.serial,
        })
    }

    pub(crate) fn check_known_bearer(&self, f: &MFamily, a: &MAccess, required: u32, header: Option<&str>) {
        let got = self.p.check_bearer(self.t, header, ScopeSet::from_bits(required));
        self.observe();
        let want = self.expected_bearer(f, a, required);
        if got.is_ok() {
            BEARER_OK.fetch_add(1, Ordering::Relaxed);
        }
        assert_eq!(got, want, "bearer {header:?} at {} of {f:?}", self.seen());
        if let Err(e) = got {
            let mut out = oauth2_devices::heapless::String::<512>::new();
            e.write_challenge("gw", ScopeSet::from_bits(required), self.p.scopes(), &mut out).expect("fits");
        }
        assert_eq!(self.p.verify_access_token(self.t, &a.text), self.expected_bearer(f, a, 0));
        self.observe();
    }

    /// After a replay revoked `serial`: none of the family's access tokens verifies any more.
    pub(crate) fn assert_family_dead(&self, serial: u32) {
        for f in self.families.iter().filter(|f| f.serial == serial) {
            assert!(!f.in_table);
            for a in &f.access {
                let got = self.p.check_bearer(self.t, Some(&format!("Bearer {}", a.text)), ScopeSet::EMPTY);
                self.observe();
                let now = self.seen();
                let want = if !self.valid(a.key) {
                    BearerError::Invalid
                } else if now >= a.expires_at {
                    BearerError::Expired
                } else {
                    BearerError::Revoked
                };
                assert_eq!(got, Err(want), "token of replayed family {serial} still accepted");
            }
        }
    }

    // ----- the guess budgets -----

    pub(crate) fn record_failure(&mut self, source: u8) {
        let at = self.clock.get();
        self.failures.push(Failure { source, key: self.current, at, epoch: self.epoch });
        let cfg = fuzzing::config().limits;
        let recent = |f: &&Failure| f.epoch == self.epoch && f.at <= at && at - f.at < cfg.window;
        let global = self.failures.iter().filter(recent).count();
        let mine = self.failures.iter().filter(recent).filter(|f| f.source == source && f.key == self.current).count();
        assert!(global <= 2 * usize::from(cfg.global), "{global} wrong guesses within one window");
        assert!(mine <= 2 * usize::from(cfg.per_source), "{mine} wrong guesses by one source within one window");
    }

    /// A refusal must have a cause: this source's budget, the global budget, or a full source table.
    /// A live window started at most `window` seconds ago; the failures it counts are those since, which
    /// after a restore that set the clock back include failures made at later clock times.
    pub(crate) fn check_rate_limited(&self, source: u8) {
        let now = self.clock.get();
        let cfg = fuzzing::config().limits;
        let recent: Vec<&Failure> =
            self.failures.iter().filter(|f| u64::from(f.at) + u64::from(cfg.window) > u64::from(now)).collect();
        let mine = recent.iter().filter(|f| f.source == source && f.key == self.current).count();
        let mut others: Vec<(u8, KeyRef)> = recent
            .iter()
            .filter(|f| !(f.source == source && f.key == self.current))
            .map(|f| (f.source, f.key))
            .collect();
        others.sort_by_key(|(s, k)| (*s, k.id, k.generation));
        others.dedup();
        assert!(
            mine >= usize::from(cfg.per_source)
                || recent.len() >= usize::from(cfg.global)
                || others.len() >= SOURCE_SLOTS,
            "rate-limited without cause: source {source}, {mine} own, {} recent, {} other sources at {now}; history {:?}",
            recent.len(),
            others.len(),
            self.failures.iter().map(|f| (f.source, f.key.id, f.key.generation, f.at, f.epoch)).collect::<Vec<_>>()
        );
    }
}
