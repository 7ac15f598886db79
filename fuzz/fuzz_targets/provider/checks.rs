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
        assert_eq!(next_serial(&self.p), self.next_serial, "next serial");

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
            assert_eq!(g.source, m.source, "slot {slot}: source tag");
            let last_poll = (m.state == MState::Undecided).then_some(m.last_poll);
            assert_eq!(g.last_poll(), last_poll, "slot {slot}: {g:?} vs {m:?}");
            assert_eq!(g.user(), user_of(m), "slot {slot}: {g:?} vs {m:?}");
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
        self.check_devices(now);
    }

    /// `Provider::families` of every user with a family in the table, and of user 0: exactly the
    /// model's live families of that user (reservations included), in slot order. This is also where
    /// the approval time, the last use and whether a family is issued are compared.
    fn check_devices(&self, now: u32) {
        let mut users: Vec<u32> = self.families.iter().filter(|f| f.in_table).map(|f| f.user).collect();
        users.push(0);
        users.sort_unstable();
        users.dedup();
        for user in users {
            let got: Vec<DeviceInfo> = self.p.families(u64::from(now), user).collect();
            let mut want: Vec<&MFamily> =
                self.families.iter().filter(|f| f.user == user && self.live_family(f, now)).collect();
            want.sort_by_key(|f| f.slot);
            let want: Vec<DeviceInfo> = want
                .into_iter()
                .map(|f| DeviceInfo {
                    slot: f.slot as u16,
                    serial: f.serial,
                    client: f.client,
                    scopes: ScopeSet::from_bits(f.scopes),
                    approved_at: f.approved_at,
                    last_used: f.issued.then_some(f.last_used),
                    expires_at: f.expires_at,
                    connected: f.issued,
                })
                .collect();
            assert_eq!(got, want, "connected devices of user {user} at {now}");
            // The account limit, for the families an approval reserved (see `MFamily::unreserved`).
            let reserved = self.families.iter().filter(|f| f.user == user && !f.unreserved && self.live_family(f, now));
            let limit = usize::from(self.config.families_per_user);
            assert!(reserved.count() <= limit, "user {user} over the account limit of {limit}");
        }
        self.observe();
    }

    /// The grant-table policy restated over the provider's own table: whether a grant keeps its slot
    /// (live, and approved or undecided and polled within `abandon_after`).
    pub(crate) fn keeps_slot(&self, g: &PendingGrant, now: u32) -> bool {
        let abandoned = g.last_poll().is_some_and(|last| now.saturating_sub(last) >= self.config.abandon_after);
        !g.is_expired(now) && !matches!(g.state, GrantState::Exchanged | GrantState::Denied) && !abandoned
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

    /// A wrong user code: charged to its source in the model's budget, and the global bound checked
    /// from the history alone (fixed windows hold at most `global` failures each, so any span shorter
    /// than a window holds at most twice that, within one clock epoch).
    pub(crate) fn record_guess(&mut self, key: [u8; 8]) {
        let at = self.clock.get();
        if self.codes.fail(at, key) {
            self.stats.code_evictions += 1;
        }
        self.failures.push(Failure { at, epoch: self.epoch });
        let cfg = self.config.limits;
        let global =
            self.failures.iter().filter(|f| f.epoch == self.epoch && f.at <= at && at - f.at < cfg.window).count();
        assert!(global <= 2 * usize::from(cfg.global), "{global} wrong guesses within one window");
    }
}
