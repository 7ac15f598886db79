//! The operations: the fuzz input (a sequence of `Op`s) and what each does to the provider and the
//! model.

use super::model::*;
use super::*;

// ----- the input -----

#[derive(Debug, Arbitrary)]
pub(crate) struct Input {
    pub(crate) seed: u64,
    pub(crate) start: u32,
    pub(crate) policy: Policy,
    pub(crate) ops: Vec<Op>,
}

/// The table-policy knobs of the configuration, chosen by the input: families per account (1 to 5, so
/// both `AccountFull` and `DevicesFull` are reached with four family slots), `abandon_after` (1 to
/// 100 s, past the 60 s code lifetime at the top), and the free failures of both attempt budgets.
#[derive(Debug, Arbitrary)]
pub(crate) struct Policy {
    pub(crate) families_per_user: u8,
    pub(crate) abandon_after: u8,
    pub(crate) code_failures: u8,
    pub(crate) auth_failures: u8,
}

impl Policy {
    pub(crate) fn config(&self) -> Config {
        let mut c = fuzzing::config();
        c.families_per_user = 1 + u16::from(self.families_per_user % 5);
        c.abandon_after = 1 + u32::from(self.abandon_after % 100);
        c.limits.per_source = 1 + u16::from(self.code_failures % 5);
        c.auth_limits.per_source = 1 + u16::from(self.auth_failures % 5);
        c
    }
}

/// How a client presents itself: `Right` is what its registration expects.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub(crate) enum Creds {
    Right,
    NoSecret,
    WrongSecret,
}

#[derive(Debug, Clone, Arbitrary)]
pub(crate) enum ScopeArg {
    /// No `scope` parameter.
    Default,
    /// Registered names (bits of `SCOPES`) joined by spaces.
    Names(u8),
    /// Anything.
    Raw(String),
}

#[derive(Debug, Clone, Arbitrary)]
pub(crate) enum CodeRef {
    /// A grant's user code, spelled one of several accepted ways.
    Real { grant: u8, style: u8 },
    /// A grant's user code with one letter changed to another alphabet letter.
    Mutated { grant: u8, pos: u8, letter: u8 },
    /// Anything.
    Raw(String),
}

#[derive(Debug, Clone, Copy, Arbitrary)]
pub(crate) enum Mutation {
    None,
    Replace { pos: u8, byte: u8 },
    Truncate(u8),
    Append(u8),
}

/// Which token of a family: its access tokens or its refresh tokens, newest first.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub(crate) enum Which {
    Access(u8),
    Refresh(u8),
}

#[derive(Debug, Clone, Copy, Arbitrary)]
pub(crate) enum HeaderStyle {
    Standard,
    OddSpacing,
    Missing,
    OtherScheme,
    Empty,
}

/// The deadlines [`Op::Until`] moves to.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub(crate) enum Deadline {
    /// A grant's expiry.
    GrantExpiry,
    /// When an undecided grant counts as abandoned: its last accepted poll (or issue) plus `abandon_after`.
    Abandoned,
    /// When a polling device may poll again without `slow_down`.
    NextPoll,
    /// A token family's expiry (a reservation's is its grant's).
    FamilyExpiry,
}

#[derive(Debug, Clone, Arbitrary)]
pub(crate) enum Op {
    /// A whole device flow in one step (authorize, approve the real code, poll), to fill the tables.
    Flow {
        client: u8,
        user: u8,
        from: u8,
    },
    /// Device authorization; `from` picks the peer (see `model::peer`), as in every op that
    /// authenticates a client.
    Authorize {
        client: u8,
        creds: Creds,
        scope: ScopeArg,
        from: u8,
    },
    Info {
        code: CodeRef,
        source: u8,
    },
    Approve {
        code: CodeRef,
        source: u8,
        user: u8,
        granted: u8,
    },
    Deny {
        code: CodeRef,
        source: u8,
    },
    Poll {
        grant: u8,
        client: Option<u8>,
        creds: Creds,
        mutation: Mutation,
        from: u8,
    },
    Refresh {
        family: u8,
        token: u8,
        client: Option<u8>,
        creds: Creds,
        scope: ScopeArg,
        mutation: Mutation,
        from: u8,
    },
    Revoke {
        family: u8,
        which: Which,
        client: Option<u8>,
        creds: Creds,
        mutation: Mutation,
        from: u8,
    },
    Bearer {
        family: u8,
        token: u8,
        required: u8,
        header: HeaderStyle,
        mutation: Mutation,
    },
    Introspect {
        family: u8,
        which: Which,
        client: Option<u8>,
        creds: Creds,
        mutation: Mutation,
        from: u8,
    },
    /// The connected-devices page revokes a family (`tweak` 2..4 gets the user, slot or serial wrong).
    RevokeFamily {
        family: u8,
        tweak: u8,
    },
    /// `revoke_serial` of a grant's serial (an operator's revocation; reaches the exchange of an
    /// approval whose reservation is gone).
    RevokeSerial {
        grant: u8,
    },
    /// A page sign-in from a peer, failed or not (the authentication budget).
    SignIn {
        from: u8,
        fail: bool,
    },
    /// `user_code_retry_after` of a guessing source.
    RetryAfter {
        source: u8,
    },
    Purge,
    /// Moves the time to a deadline of a grant or a family, one second before, at or after it, so the
    /// boundaries of the rules (expiry, abandonment, the polling interval) are hit exactly.
    Until {
        target: u8,
        deadline: Deadline,
        offset: u8,
    },
    Wait(u8),
    Jump(u32),
    Back(u8),
    SaveRestore {
        behind: u8,
    },
    /// A real snapshot, altered (edits, cut, extension), re-signed or not, restored into a fresh provider.
    ForgeSnapshot {
        edits: Vec<(u16, u8)>,
        cut: u8,
        extend: Vec<u8>,
        resign: bool,
        behind: u8,
    },
    Rotate {
        id: u8,
    },
    Retire,
    Csrf {
        session: u8,
        other: u8,
    },
}

impl Harness {
    // ----- operations -----

    /// What `device_authorization` should answer, in its order of checks: the client (its source's
    /// authentication budget first), the scope, then the grant table's policy.
    fn authorization_outcome(
        &mut self,
        now: u32,
        index: u8,
        ok: bool,
        from: u8,
        text: Option<&str>,
    ) -> Result<(u32, usize, (u8, u32)), Refusal> {
        self.authenticate(now, from, ok)?;
        let spec = CLIENTS[usize::from(index)];
        let scopes = match text {
            None => spec.default,
            Some(s) => parse_scope(s).ok_or((ErrorCode::InvalidScope, None))?,
        };
        if scopes & !spec.allowed != 0 {
            return Err((ErrorCode::InvalidScope, None));
        }
        let tag = grant_tag(self.current.generation, peer(from));
        let (slot, rank) = self.allocate(now, tag).inspect_err(|(code, _)| match code {
            ErrorCode::Throttled => self.stats.share_refused += 1,
            _ => self.stats.grants_full += 1,
        })?;
        Ok((scopes, slot, rank))
    }

    pub(crate) fn authorize(&mut self, client: u8, creds: Creds, scope: &ScopeArg, from: u8) {
        let index = client % 5;
        let (creds, authenticated) = creds_for(index, creds, from);
        let text = scope_text(scope);
        let req = DeviceAuthorizationRequest { client: creds, scope: text.as_deref() };
        let got = self.p.device_authorization(self.t, &req, &mut self.rng);
        let now = self.tick();
        let tag = grant_tag(self.current.generation, peer(from));
        let want = self.authorization_outcome(now, index, authenticated, from, text.as_deref());
        let want = match (got, want) {
            (Ok(auth), Ok(want)) => return self.authorized(&auth, index, tag, now, want),
            (Err(e), Ok(want)) => panic!("device_authorization {req:?} refused ({e:?}), model: {want:?}"),
            (got, Err(want)) => {
                assert_eq!(outcome(&got), Err(want), "device_authorization {req:?}");
                want
            }
        };
        assert_eq!(next_serial(&self.p), self.next_serial, "a refused request took a serial");
        match want.0 {
            // A source holding no grant is never refused for its share (only for its authentication
            // back-off).
            ErrorCode::Throttled if tag == 0 || self.holds(tag, now) == 0 => {
                assert!(self.auth_waits(now, from), "429 for a source holding no grant")
            }
            ErrorCode::TemporarilyUnavailable => {
                // 503 only when every slot is held by a live undecided or approved grant.
                let table: Vec<_> = grant_table(&self.p).collect();
                assert_eq!(table.len(), GRANT_SLOTS, "503 with a free slot");
                for (slot, g) in &table {
                    assert!(self.keeps_slot(g, now), "503 while slot {slot} could be reclaimed: {g:?}");
                }
            }
            _ => {}
        }
    }

    /// A successful device authorization: the codes, the serial and its lease, and the new grant.
    fn authorized(
        &mut self,
        auth: &oauth2_devices::provider::DeviceAuthorization,
        index: u8,
        tag: u16,
        now: u32,
        (scopes, slot, rank): (u32, usize, (u8, u32)),
    ) {
        let serial = self.next_serial;
        let claims = DeviceCodeClaims::decode(&auth.device_code, &self.ring, client_id(index))
            .expect("a fresh device code verifies");
        assert_eq!(claims, DeviceCodeClaims { key_id: self.current.id, slot: slot as u16, serial });
        // The serial lease: taking its last serial is the only durable change of a device authorization.
        if serial == self.lease {
            self.lease = serial.wrapping_add(SERIAL_LEASE);
            self.stats.lease_bumps += 1;
            self.bump();
        }
        self.next_serial = serial.wrapping_add(1);
        assert_eq!(next_serial(&self.p), self.next_serial);
        assert_eq!(
            (auth.expires_in, auth.interval),
            (self.config.device_code_lifetime, u32::from(self.config.interval))
        );
        for g in self.grants.iter().filter(|g| g.in_table) {
            assert_ne!(g.user_code, auth.user_code, "user code reissued while in the table");
        }
        match rank.0 {
            1 => self.stats.reclaimed_expired += 1,
            2 => self.stats.reclaimed_decided += 1,
            3 => self.stats.reclaimed_abandoned += 1,
            _ => {}
        }
        if let Some(old) = self.occupant(slot) {
            assert!(self.reclaim_rank(old, now).is_some(), "a grant that keeps its slot was reclaimed: {old:?}");
        }
        for g in self.grants.iter_mut().filter(|g| g.in_table && g.slot == slot) {
            g.in_table = false;
        }
        let mut json = [0u8; 512];
        assert!(auth.write_json(self.p.config(), &mut json).is_ok());
        let mut small = [0u8; 64];
        assert!(auth.write_json(self.p.config(), &mut small).is_err());
        self.grants.push(MGrant {
            device_code: auth.device_code.to_string(),
            user_code: auth.user_code,
            key: self.current,
            client: index,
            slot,
            serial,
            requested: scopes,
            expires_at: now.saturating_add(self.config.device_code_lifetime),
            in_table: true,
            state: MState::Undecided,
            polled: false,
            last_poll: now,
            interval: self.config.interval,
            source: tag,
            issued: false,
            denied: false,
        });
        // Fair shares: after an allocation no source holds more than half the table (rounded up).
        if tag != 0 {
            let held = grant_table(&self.p).filter(|(_, g)| g.source == tag && self.keeps_slot(g, now)).count();
            assert!(held <= GRANT_SLOTS.div_ceil(2), "source {tag} holds {held} of {GRANT_SLOTS} slots");
        }
    }

    /// Grants of the source tagged `tag` that keep their slot, in the provider's table.
    fn holds(&self, tag: u16, now: u32) -> usize {
        grant_table(&self.p).filter(|(_, g)| g.source == tag && self.keeps_slot(g, now)).count()
    }

    /// Whether `from` is in its authentication back-off (without touching the model's budget).
    fn auth_waits(&self, now: u32, from: u8) -> bool {
        self.auth.clone().admit(now, limiter_key(self.current.generation, peer(from))).is_err()
    }

    /// The grant a user-code input finds, or the error before any state check.
    pub(crate) fn find(&self, input: &str) -> Option<usize> {
        let code = normalise(input)?;
        self.grants.iter().position(|g| g.in_table && *g.user_code.as_bytes() == code)
    }

    pub(crate) fn info_of(&self, i: usize) -> GrantInfo {
        let g = &self.grants[i];
        GrantInfo {
            client: g.client,
            scopes: ScopeSet::from_bits(scopes_of(g)),
            state: state_of(g),
            expires_at: g.expires_at,
            user_code: g.user_code,
        }
    }

    /// user_code_info / approve / deny: `decide` is `None` for a look-up.
    pub(crate) fn verification(&mut self, code: &CodeRef, source: u8, decide: Option<Option<(u32, u32)>>) {
        let source = source % 6;
        let input = self.user_code_input(code);
        let src = [b's', source];
        let got = match decide {
            None => self.p.user_code_info(self.t, &input, &src),
            Some(Some((user, granted))) => self.p.approve(self.t, &input, &src, user, ScopeSet::from_bits(granted)),
            Some(None) => self.p.deny(self.t, &input, &src),
        };
        let now = self.tick();
        let key = limiter_key(self.current.generation, &src);
        if self.codes.admit(now, key).is_err() {
            assert_eq!(got, Err(ApproveError::RateLimited), "{input:?} from a source in its back-off");
            self.stats.rate_limited += 1;
            return;
        }
        let Some(i) = self.find(&input) else {
            assert_eq!(got, Err(ApproveError::InvalidCode), "{input:?} matches no grant");
            self.record_guess(key);
            return;
        };
        let g = &self.grants[i];
        let want = if now >= g.expires_at {
            Err(ApproveError::Expired)
        } else {
            match decide {
                None => Ok(()),
                Some(_) if g.state != MState::Undecided => Err(ApproveError::AlreadyDecided),
                Some(Some((_, granted))) if granted & !g.requested != 0 => Err(ApproveError::ScopeNotRequested),
                Some(Some((user, _))) if self.count_user(user, now) >= usize::from(self.config.families_per_user) => {
                    self.stats.account_full += 1;
                    Err(ApproveError::AccountFull)
                }
                Some(Some(_)) if self.free_family_slot(now).is_none() => {
                    self.stats.devices_full += 1;
                    Err(ApproveError::DevicesFull)
                }
                Some(_) => Ok(()),
            }
        };
        if want.is_ok() {
            match decide {
                None => {}
                Some(Some((user, granted))) => {
                    // The approval reserves the device's family slot until the code expires.
                    let slot = self.free_family_slot(now).expect("checked above");
                    let g = &self.grants[i];
                    let reservation = MFamily {
                        slot,
                        serial: g.serial,
                        client: g.client,
                        user,
                        scopes: granted,
                        expires_at: g.expires_at,
                        in_table: true,
                        refresh: CLIENTS[usize::from(g.client)].refresh,
                        counter: 0,
                        issued: false,
                        approved_at: now,
                        last_used: now,
                        unreserved: false,
                        refresh_tokens: Vec::new(),
                        access: Vec::new(),
                    };
                    self.place_family(reservation, now);
                    let g = &mut self.grants[i];
                    g.state = MState::Approved { user, scopes: granted };
                    g.requested = granted;
                    self.stats.approved += 1;
                    self.bump();
                }
                Some(None) => {
                    let g = &mut self.grants[i];
                    g.state = MState::Denied;
                    g.denied = true;
                    self.stats.denied += 1;
                    self.bump();
                }
            }
        }
        assert_eq!(got, want.map(|()| self.info_of(i)), "verification of {input:?}");
    }

    /// `user_code_retry_after`: the seconds the user-code budget makes a source wait.
    pub(crate) fn retry_after(&mut self, source: u8) {
        let src = [b's', source % 6];
        let got = self.p.user_code_retry_after(self.t, &src);
        let now = self.tick();
        let want = self.codes.admit(now, limiter_key(self.current.generation, &src)).err().unwrap_or(0);
        assert_eq!(got, want, "user_code_retry_after of {src:?} at {now}");
    }

    /// A page sign-in: admitted unless the peer is in its authentication back-off; a failure is charged.
    pub(crate) fn sign_in(&mut self, from: u8, fail: bool) {
        let src = peer(from);
        let got = self.p.admit_sign_in(self.t, src);
        let now = self.tick();
        let key = limiter_key(self.current.generation, src);
        let want = self.auth.admit(now, key).map_err(|retry_after| RateLimited { retry_after });
        assert_eq!(got, want, "admit_sign_in of {src:?} at {now}");
        if want.is_err() {
            self.stats.sign_in_throttled += 1;
        } else if fail {
            self.p.record_sign_in_failure(self.t, src);
            self.stats.auth_failures += 1;
            if self.auth.fail(now, key) {
                self.stats.auth_evictions += 1;
            }
        }
    }

    pub(crate) fn check_tokens(&mut self, tokens: &TokenResponse, family: usize, scopes: u32, now: u32) {
        let f = &self.families[family];
        let id = client_id(f.client);
        let claims = AccessClaims::verify(&tokens.access_token, &self.ring, id).expect("issued access token verifies");
        let expires_at = now.saturating_add(self.config.access_token_lifetime).min(f.expires_at);
        assert_eq!(
            claims,
            AccessClaims {
                key_id: self.current.id,
                client: f.client,
                family_slot: f.slot as u16,
                serial: f.serial,
                user: f.user,
                scopes: ScopeSet::from_bits(scopes),
                expires_at,
            }
        );
        assert_eq!(tokens.expires_in, expires_at - now.min(expires_at));
        assert_eq!(tokens.scopes.bits(), scopes);
        assert_eq!(tokens.refresh_token.is_some(), f.refresh);
        let access = MAccess { text: tokens.access_token.to_string(), key: self.current, expires_at, scopes };
        let key = self.current;
        let f = &mut self.families[family];
        if let Some(rt) = &tokens.refresh_token {
            let claims = RefreshClaims::verify(rt, &self.ring, id).expect("issued refresh token verifies");
            assert_eq!(
                claims,
                RefreshClaims {
                    key_id: key.id,
                    client: f.client,
                    family_slot: f.slot as u16,
                    serial: f.serial,
                    counter: f.counter,
                }
            );
            assert_eq!(f.refresh_tokens.len(), f.counter as usize, "one refresh token per counter");
            f.refresh_tokens.push((rt.to_string(), key));
        }
        f.access.push(access);
        let mut json = [0u8; 512];
        assert!(tokens.write_json(self.p.scopes(), &mut json).is_ok());
    }

    pub(crate) fn poll(&mut self, grant: u8, client: Option<u8>, creds: Creds, mutation: Mutation, from: u8) {
        let Some(gi) =
            nth_back(&self.grants, grant).map(|_| self.grants.len() - 1 - usize::from(grant) % self.grants.len())
        else {
            return;
        };
        let owner = self.grants[gi].client;
        let index = client.map_or(owner, |c| c % 5);
        let (creds, authenticated) = creds_for(index, creds, from);
        let code = mutate(&self.grants[gi].device_code, mutation);
        let req = TokenRequest { client: creds, grant: Grant::DeviceCode { device_code: &code } };
        let got = self.p.token(self.t, &req);
        let now = self.tick();
        if let Err(e) = &got {
            let mut json = [0u8; 256];
            assert!(e.write_json(&mut json).is_ok());
        }
        if let Err(want) = self.authenticate(now, from, authenticated) {
            assert_eq!(outcome(&got), Err(want), "poll by client {index} from {from}");
            return;
        }
        // The grant whose device code this exact string is, if any: anything else is a forgery.
        let Some(gi) = self.grants.iter().rposition(|g| g.device_code == code) else {
            assert_eq!(outcome(&got), plain(ErrorCode::InvalidGrant), "forged device code {code:?} accepted");
            return;
        };
        let g = self.grants[gi].clone();
        if !self.valid(g.key) || g.client != index {
            assert_eq!(outcome(&got), plain(ErrorCode::InvalidGrant), "{g:?} by client {index}");
            return;
        }
        // A spent code is a replay whatever its age, and even once its grant left the table: what it
        // issued is revoked while its family is in the table.
        if let MState::Exchanged { .. } = g.state {
            assert_eq!(outcome(&got), plain(ErrorCode::InvalidGrant), "replay of {g:?}");
            self.stats.code_replays += 1;
            if self.revoke_serial(g.serial) {
                self.bump();
            }
            self.assert_family_dead(g.serial);
            return;
        }
        if !g.in_table {
            assert_eq!(outcome(&got), plain(ErrorCode::InvalidGrant), "{g:?} by client {index}");
            return;
        }
        if now >= g.expires_at {
            assert_eq!(outcome(&got), plain(ErrorCode::ExpiredToken), "{g:?} at {now}");
            return;
        }
        match g.state {
            MState::Undecided => {
                let gm = &mut self.grants[gi];
                if g.polled && now < g.last_poll.saturating_add(u32::from(g.interval)) {
                    assert_eq!(outcome(&got), plain(ErrorCode::SlowDown));
                    self.stats.slow_down += 1;
                    gm.interval = gm.interval.saturating_add(SLOW_DOWN_STEP);
                } else {
                    assert_eq!(outcome(&got), plain(ErrorCode::AuthorizationPending));
                    gm.polled = true;
                    gm.last_poll = now;
                }
            }
            MState::Denied => assert_eq!(outcome(&got), plain(ErrorCode::AccessDenied)),
            MState::Exchanged { .. } => unreachable!("handled above"),
            MState::Approved { user, scopes } => self.exchange(got, gi, now, user, scopes),
        }
    }

    /// The token exchange of an approved grant: the approval's reservation becomes the live family;
    /// without one (revoked with `revoke_serial`) a free slot is taken, or 503.
    fn exchange(&mut self, got: Result<TokenResponse, OAuthError>, gi: usize, now: u32, user: u32, scopes: u32) {
        let g = self.grants[gi].clone();
        let reserved = self.family_of_serial(g.serial).filter(|&fi| !self.families[fi].issued);
        let fi = match reserved {
            Some(fi) => fi,
            None => {
                let Some(slot) = self.free_family_slot(now) else {
                    assert_eq!(outcome(&got), plain(ErrorCode::TemporarilyUnavailable));
                    self.stats.families_full += 1;
                    return;
                };
                self.stats.issued_unreserved += 1;
                let f = MFamily {
                    slot,
                    serial: g.serial,
                    client: g.client,
                    user,
                    scopes,
                    expires_at: now,
                    in_table: true,
                    refresh: CLIENTS[usize::from(g.client)].refresh,
                    counter: 0,
                    issued: false,
                    approved_at: now,
                    last_used: now,
                    unreserved: true,
                    refresh_tokens: Vec::new(),
                    access: Vec::new(),
                };
                self.place_family(f, now);
                self.families.len() - 1
            }
        };
        let tokens = got.unwrap_or_else(|e| panic!("approved {g:?} polled at {now}: {e:?}"));
        self.stats.issued += 1;
        // The safety properties, by name.
        assert!(!g.issued, "a device code yielded tokens twice");
        assert!(!g.denied, "tokens issued for a denied grant");
        assert!(now < g.expires_at, "tokens issued after the grant expired");
        let lifetime = if self.families[fi].refresh {
            self.config.refresh_token_lifetime
        } else {
            self.config.access_token_lifetime
        };
        let f = &mut self.families[fi];
        assert_eq!((f.user, f.scopes, f.client), (user, scopes, g.client), "the reservation is the approval's");
        f.expires_at = now.saturating_add(lifetime);
        f.last_used = coarse(now);
        f.issued = true;
        let gm = &mut self.grants[gi];
        gm.state = MState::Exchanged { user };
        gm.issued = true;
        self.bump();
        self.check_tokens(&tokens, fi, scopes, now);
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn refresh(
        &mut self,
        family: u8,
        token: u8,
        client: Option<u8>,
        creds: Creds,
        scope: &ScopeArg,
        m: Mutation,
        from: u8,
    ) {
        let Some(f) = nth_back(&self.families, family) else { return };
        let Some((text, _)) = nth_back(&f.refresh_tokens, token) else { return };
        let text = mutate(text, m);
        let index = client.map_or(f.client, |c| c % 5);
        let (creds, authenticated) = creds_for(index, creds, from);
        let scope_text = scope_text(scope);
        let req = TokenRequest {
            client: creds,
            grant: Grant::RefreshToken { refresh_token: &text, scope: scope_text.as_deref() },
        };
        let got = self.p.token(self.t, &req);
        let now = self.tick();
        if let Err(want) = self.authenticate(now, from, authenticated) {
            assert_eq!(outcome(&got), Err(want));
            return;
        }
        if !CLIENTS[usize::from(index)].refresh {
            assert_eq!(outcome(&got), plain(ErrorCode::UnauthorizedClient));
            return;
        }
        let found = self.families.iter().enumerate().rev().find_map(|(fi, f)| {
            f.refresh_tokens.iter().position(|(t, _)| *t == text).map(|c| (fi, c as u32, f.refresh_tokens[c].1))
        });
        let Some((fi, counter, key)) = found else {
            assert_eq!(outcome(&got), plain(ErrorCode::InvalidGrant), "forged refresh token {text:?} accepted");
            return;
        };
        let f = self.families[fi].clone();
        assert!(f.issued, "a refresh token of a reservation");
        if !self.valid(key) || f.client != index || !f.in_table || now >= f.expires_at {
            assert_eq!(outcome(&got), plain(ErrorCode::InvalidGrant));
            return;
        }
        if counter != f.counter {
            assert_eq!(outcome(&got), plain(ErrorCode::InvalidGrant), "replayed refresh token accepted");
            self.stats.refresh_replays += 1;
            assert!(self.revoke_serial(f.serial));
            self.bump();
            self.assert_family_dead(f.serial);
            return;
        }
        let scopes = match &scope_text {
            None => f.scopes,
            Some(s) => match parse_scope(s) {
                Some(bits) if bits & !f.scopes == 0 => bits,
                _ => {
                    assert_eq!(outcome(&got), plain(ErrorCode::InvalidScope));
                    return;
                }
            },
        };
        let tokens = got.unwrap_or_else(|e| panic!("refresh of {f:?} at {now}: {e:?}"));
        self.stats.refreshed += 1;
        let lifetime = self.config.refresh_token_lifetime;
        let fm = &mut self.families[fi];
        fm.counter += 1;
        fm.expires_at = now.saturating_add(lifetime);
        fm.last_used = coarse(now);
        self.bump();
        self.check_tokens(&tokens, fi, scopes, now);
    }

    /// A token of a family (or a mutation of one) and what the model knows of it.
    pub(crate) fn pick_token(&self, family: u8, which: Which, m: Mutation) -> Option<String> {
        let f = nth_back(&self.families, family)?;
        let text = match which {
            Which::Access(n) => &nth_back(&f.access, n)?.text,
            Which::Refresh(n) => &nth_back(&f.refresh_tokens, n)?.0,
        };
        Some(mutate(text, m))
    }

    /// The family and key of a token the provider issued, by its exact text.
    pub(crate) fn lookup(&self, text: &str) -> Option<(usize, KeyRef, Option<&MAccess>)> {
        self.families.iter().enumerate().rev().find_map(|(fi, f)| {
            if let Some(a) = f.access.iter().find(|a| a.text == text) {
                return Some((fi, a.key, Some(a)));
            }
            f.refresh_tokens.iter().find(|(t, _)| t == text).map(|(_, k)| (fi, *k, None))
        })
    }

    pub(crate) fn revoke(&mut self, family: u8, which: Which, client: Option<u8>, creds: Creds, m: Mutation, from: u8) {
        let Some(text) = self.pick_token(family, which, m) else { return };
        let owner = self.lookup(&text).map_or(0, |(fi, _, _)| self.families[fi].client);
        let index = client.map_or(owner, |c| c % 5);
        let (creds, authenticated) = creds_for(index, creds, from);
        let got = self.p.revoke(self.t, &TokenQuery { client: creds, token: &text });
        let now = self.tick();
        if let Err(want) = self.authenticate(now, from, authenticated) {
            assert_eq!(outcome(&got), Err(want));
            return;
        }
        assert_eq!(got, Ok(()));
        if let Some((fi, key, _)) = self.lookup(&text) {
            let f = &self.families[fi];
            if self.valid(key) && f.client == index && f.in_table {
                let serial = f.serial;
                assert!(self.revoke_serial(serial));
                self.stats.revoked += 1;
                self.bump();
            }
        }
    }

    pub(crate) fn bearer(&mut self, family: u8, token: u8, required: u8, header: HeaderStyle, m: Mutation) {
        let Some(f) = nth_back(&self.families, family) else { return };
        let Some(a) = nth_back(&f.access, token) else { return };
        let text = mutate(&a.text, m);
        let required = u32::from(required) & 0b1111;
        let header = match header {
            HeaderStyle::Standard => Some(format!("Bearer {text}")),
            HeaderStyle::OddSpacing => Some(format!("bEARER   {text}  ")),
            HeaderStyle::Missing => None,
            HeaderStyle::OtherScheme => Some(format!("Basic {text}")),
            HeaderStyle::Empty => Some("Bearer".into()),
        };
        let got = self.p.check_bearer(self.t, header.as_deref(), ScopeSet::from_bits(required));
        self.observe();
        match header.as_deref() {
            None => assert_eq!(got, Err(BearerError::Missing)),
            Some(h) if h.starts_with("Basic") => assert_eq!(got, Err(BearerError::Missing)),
            Some("Bearer") => assert_eq!(got, Err(BearerError::Malformed)),
            // `parse_bearer` tolerates spaces around the token.
            Some(h) => match self.lookup(text.trim_matches(' ')) {
                Some((fi, _, Some(a))) => self.check_known_bearer(&self.families[fi], a, required, Some(h)),
                _ => assert!(
                    matches!(got, Err(BearerError::Invalid | BearerError::Malformed)),
                    "forged bearer {text:?}: {got:?}"
                ),
            },
        }
    }

    pub(crate) fn introspect(
        &mut self,
        family: u8,
        which: Which,
        client: Option<u8>,
        creds: Creds,
        m: Mutation,
        from: u8,
    ) {
        let Some(text) = self.pick_token(family, which, m) else { return };
        let index = client.map_or(1, |c| c % 5);
        let (creds, authenticated) = creds_for(index, creds, from);
        let got = self.p.introspect(self.t, &TokenQuery { client: creds, token: &text });
        let now = self.tick();
        if let Err(want) = self.authenticate(now, from, authenticated) {
            assert_eq!(outcome(&got), Err(want));
            return;
        }
        if !CLIENTS[usize::from(index)].confidential {
            assert_eq!(outcome(&got), plain(ErrorCode::InvalidClient));
            return;
        }
        let want = match self.lookup(&text) {
            Some((fi, _, Some(a))) => {
                self.expected_bearer(&self.families[fi], a, 0).map_or(Introspection::Inactive, Introspection::Access)
            }
            Some((fi, key, None)) => {
                let f = &self.families[fi];
                let current = f.refresh_tokens.get(f.counter as usize).is_some_and(|(t, _)| *t == text);
                if self.valid(key) && current && f.issued && self.live_family(f, now) {
                    Introspection::Refresh(TokenInfo {
                        client: f.client,
                        user: f.user,
                        scopes: ScopeSet::from_bits(f.scopes),
                        expires_at: f.expires_at,
                        serial: f.serial,
                    })
                } else {
                    Introspection::Inactive
                }
            }
            None => Introspection::Inactive,
        };
        assert_eq!(got, Ok(want), "introspection of {text:?}");
        let mut json = [0u8; 512];
        assert!(want.write_json(self.p.scopes(), self.p.clients(), &mut json).is_ok());
    }

    /// `revoke_family` as the connected-devices page calls it, with the listed slot and serial, or
    /// with one of user, slot or serial wrong (refused, nothing changes).
    pub(crate) fn revoke_family(&mut self, family: u8, tweak: u8) {
        let (user, slot, serial) = match nth_back(&self.families, family) {
            Some(f) => {
                let (user, slot, serial) = (f.user, f.slot as u16, f.serial);
                match tweak % 5 {
                    2 => (user.wrapping_add(1), slot, serial),
                    3 => (user, slot + 1, serial),
                    4 => (user, slot, serial.wrapping_add(1)),
                    _ => (user, slot, serial),
                }
            }
            None => (u32::from(tweak), u16::from(tweak), 0),
        };
        let got = self.p.revoke_family(self.t, user, slot, serial);
        let now = self.tick();
        let want = self.families.iter().position(|f| {
            f.in_table && f.slot == usize::from(slot) && f.user == user && f.serial == serial && now < f.expires_at
        });
        assert_eq!(got, want.is_some(), "revoke_family({user}, {slot}, {serial}) at {now}");
        let Some(fi) = want else {
            self.stats.revoke_family_refused += 1;
            return;
        };
        self.stats.revoke_family += 1;
        self.families[fi].in_table = false;
        // An approval still waiting for its device is withdrawn: its next poll gets access_denied.
        for g in self.grants.iter_mut().filter(|g| g.in_table && g.serial == serial) {
            if let MState::Approved { .. } = g.state {
                g.state = MState::Denied;
                g.denied = true;
                self.stats.withdrawn += 1;
            }
        }
        self.bump();
        self.assert_family_dead(serial);
    }

    /// `revoke_serial` of a grant's serial: every family of that serial leaves the table.
    pub(crate) fn revoke_serial_op(&mut self, grant: u8) {
        let Some(serial) = nth_back(&self.grants, grant).map(|g| g.serial) else { return };
        let got = self.p.revoke_serial(serial);
        let want = self.revoke_serial(serial);
        assert_eq!(got, want, "revoke_serial({serial})");
        if want {
            self.stats.revoke_serial += 1;
            self.bump();
            self.assert_family_dead(serial);
        }
    }

    pub(crate) fn until(&mut self, target: u8, deadline: Deadline, offset: u8) {
        let at = match deadline {
            Deadline::GrantExpiry => nth_back(&self.grants, target).map(|g| g.expires_at),
            Deadline::Abandoned => {
                nth_back(&self.grants, target).map(|g| g.last_poll.saturating_add(self.config.abandon_after))
            }
            Deadline::NextPoll => {
                nth_back(&self.grants, target).map(|g| g.last_poll.saturating_add(u32::from(g.interval)))
            }
            Deadline::FamilyExpiry => nth_back(&self.families, target).map(|f| f.expires_at),
        };
        if let Some(at) = at {
            self.t = (u64::from(at) + u64::from(offset % 3)).saturating_sub(1);
        }
    }

    pub(crate) fn purge(&mut self) {
        let n = self.p.purge_expired(self.t);
        let now = self.tick();
        let mut want = 0;
        for g in self.grants.iter_mut().filter(|g| g.in_table && now >= g.expires_at) {
            g.in_table = false;
            want += 1;
        }
        for f in self.families.iter_mut().filter(|f| f.in_table && now >= f.expires_at) {
            f.in_table = false;
            want += 1;
        }
        assert_eq!(n, want, "purge_expired");
    }

    pub(crate) fn save_restore(&mut self, behind: u8) {
        let mut buf = [0u8; 1024];
        let len = self.p.save(&mut buf).expect("a snapshot fits");
        assert!(len <= max_snapshot_len(GRANT_SLOTS, FAMILY_SLOTS), "{len} bytes");
        assert_eq!(buf[4], SNAPSHOT_VERSION, "the format written");
        let grants_before: Vec<_> = grant_table(&self.p).collect();
        let families_before: Vec<_> = family_table(&self.p).collect();
        // A flipped bit is refused and changes nothing.
        let mut bad = buf;
        bad[usize::from(behind) % len] ^= 1 << (behind % 8);
        assert!(self.p.restore(self.t, &bad[..len]).is_err());
        assert!(self.p.restore(self.t, &buf[..len - 1]).is_err());
        self.check_tables();

        let behind = u32::from(behind % 4) * 37;
        let at = if behind > 0 && self.clock.get() >= behind { self.clock.get() - behind } else { self.clock.get() };
        let restored = self.p.restore(u64::from(at), &buf[..len]).expect("own snapshot restores");
        self.bump();
        // The snapshot holds the serial lease; the counter restarts past it, with a new lease.
        self.next_serial = self.lease.wrapping_add(SERIAL_RESTORE_GAP);
        self.lease = self.next_serial;
        assert_eq!(next_serial(&self.p), self.next_serial);
        if at < self.clock.get() {
            assert_eq!(restored, Restored { grants: 0, families: 0, clock_was_behind: true });
            self.stats.restored_behind += 1;
            self.clock.set(at);
            self.t = u64::from(at);
            self.grants.iter_mut().for_each(|g| g.in_table = false);
            self.families.iter_mut().for_each(|f| f.in_table = false);
            // The attempt budgets live in RAM and are not part of a snapshot: see `Failure::epoch`.
            self.epoch += 1;
            return;
        }
        let now = self.clock.get();
        // Only decided grants are saved (an undecided request is not worth a flash write).
        let mut grants = 0;
        for g in self.grants.iter_mut().filter(|g| g.in_table) {
            if now >= g.expires_at || g.state == MState::Undecided {
                g.in_table = false;
            } else {
                grants += 1;
            }
        }
        let mut families = 0;
        for f in self.families.iter_mut().filter(|f| f.in_table) {
            if now >= f.expires_at {
                f.in_table = false;
            } else {
                families += 1;
            }
        }
        assert_eq!(restored, Restored { grants, families, clock_was_behind: false });
        self.stats.restored += 1;
        let kept: Vec<_> =
            grants_before.into_iter().filter(|(_, g)| now < g.expires_at && !g.state.is_undecided()).collect();
        assert_eq!(grant_table(&self.p).collect::<Vec<_>>(), kept, "grants after restore");
        let kept: Vec<_> = families_before.into_iter().filter(|f| now < f.expires_at).collect();
        assert_eq!(family_table(&self.p).collect::<Vec<_>>(), kept, "families after restore");
    }

    /// The snapshot decoder on altered input: never a panic; an error changes nothing; whatever it
    /// accepts saves and restores again to the same tables, and a second save is byte-identical.
    pub(crate) fn forge_snapshot(&mut self, edits: &[(u16, u8)], cut: u8, extend: &[u8], resign: bool, behind: u8) {
        const TAG: usize = 16;
        let mut buf = [0u8; 1024];
        let len = self.p.save(&mut buf).expect("a snapshot fits");
        let mut body = buf[..len - TAG].to_vec();
        for &(pos, byte) in edits.iter().take(8) {
            let i = usize::from(pos) % body.len();
            body[i] = byte;
        }
        body.truncate(body.len().saturating_sub(usize::from(cut % 8)));
        body.extend(extend.iter().take(48));
        let fresh = || {
            let mut p = fuzzing::provider(&mut rand_chacha::ChaCha20Rng::seed_from_u64(1)).expect("builds");
            if self.current != (KeyRef { id: fuzzing::KEY_ID, generation: 0 }) {
                // Give it the live provider's current key (through a spare id when the ids collide).
                p.keys_mut().rotate(server_key(255, u32::MAX)).expect("spare id");
                p.keys_mut().rotate(server_key(self.current.id, self.current.generation)).expect("new id");
                p.keys_mut().retire_previous();
            }
            p
        };
        let mut target = fresh();
        let tag =
            if resign { fuzzing::sign_snapshot(&target, &body) } else { buf[len - TAG..len].try_into().expect("16") };
        let mut snapshot = body;
        snapshot.extend_from_slice(&tag);
        let state = |p: &FuzzProvider| {
            (
                grant_table(p).collect::<Vec<_>>(),
                family_table(p).collect::<Vec<_>>(),
                next_serial(p),
                p.clock(),
                p.durable_version(),
            )
        };
        let before = state(&target);
        let now = u64::from(self.seen().saturating_sub(u32::from(behind % 3) * 50));
        let Ok(restored) = target.restore(now, &snapshot) else {
            assert_eq!(state(&target), before, "a refused snapshot changed the provider");
            self.stats.forged_refused += 1;
            return;
        };
        self.stats.forged_accepted += 1;
        // Records may repeat a slot (the last one wins), so the tables hold at most the counts.
        assert!(grant_table(&target).count() <= restored.grants);
        assert!(family_table(&target).count() <= restored.families);
        let clock = target.clock();
        let mut again = [0u8; 1024];
        let n = target.save(&mut again).expect("fits");
        let mut copy = fresh();
        copy.restore(u64::from(clock), &again[..n]).expect("a saved snapshot restores");
        let live = |p: &FuzzProvider| {
            (
                grant_table(p).filter(|(_, g)| clock < g.expires_at).collect::<Vec<_>>(),
                family_table(p).filter(|f| clock < f.expires_at).collect::<Vec<_>>(),
            )
        };
        assert_eq!(live(&copy), live(&target), "save/restore of an accepted snapshot");
        assert_eq!(copy.clock(), clock);
        assert_eq!(next_serial(&copy), next_serial(&target).wrapping_add(SERIAL_RESTORE_GAP));
    }

    pub(crate) fn rotate(&mut self, id: u8) {
        let id = 1 + id % 3;
        let generation = self.generations;
        let got = self.p.keys_mut().rotate(server_key(id, generation));
        if id == self.current.id {
            assert!(got.is_err());
            return;
        }
        assert!(got.is_ok());
        self.ring.rotate(server_key(id, generation)).expect("mirrors the provider");
        self.generations += 1;
        self.previous = Some(self.current);
        self.current = KeyRef { id, generation };
        self.stats.rotated += 1;
    }

    pub(crate) fn retire(&mut self) {
        self.p.keys_mut().retire_previous();
        self.ring.retire_previous();
        self.previous = None;
    }

    pub(crate) fn csrf(&mut self, session: u8, other: u8) {
        let s = [b'u', session % 4];
        let tag = self.p.csrf_tag(&s);
        assert!(self.p.verify_csrf_tag(&s, &tag));
        if other % 4 != session % 4 {
            assert!(!self.p.verify_csrf_tag(&[b'u', other % 4], &tag));
        }
        let mut flipped = tag;
        flipped[usize::from(other) % 16] ^= 1 << (session % 8);
        assert!(!self.p.verify_csrf_tag(&s, &flipped));
        assert!(!self.p.verify_csrf_tag(&s, &tag[..15]));
        for (sess, old, key) in &self.csrf {
            assert_eq!(self.p.verify_csrf_tag(&[b'u', *sess], old), self.valid(*key), "old CSRF tag");
        }
        if self.csrf.len() < 8 {
            self.csrf.push((session % 4, tag, self.current));
        }
    }

    pub(crate) fn run(&mut self, op: &Op) {
        match op {
            Op::Authorize { client, creds, scope, from } => self.authorize(*client, *creds, scope, *from),
            Op::Flow { client, user, from } => {
                let before = self.grants.len();
                self.authorize(client % 4, Creds::Right, &ScopeArg::Default, *from);
                if self.grants.len() > before {
                    let granted = self.grants[before].requested;
                    let code = CodeRef::Real { grant: 0, style: *user };
                    self.verification(&code, 5, Some(Some((u32::from(*user), granted))));
                    self.poll(0, None, Creds::Right, Mutation::None, *from);
                }
            }
            Op::Info { code, source } => self.verification(code, *source, None),
            Op::Approve { code, source, user, granted } => {
                self.verification(code, *source, Some(Some((u32::from(*user), u32::from(*granted) & 0b1111))))
            }
            Op::Deny { code, source } => self.verification(code, *source, Some(None)),
            Op::Poll { grant, client, creds, mutation, from } => self.poll(*grant, *client, *creds, *mutation, *from),
            Op::Refresh { family, token, client, creds, scope, mutation, from } => {
                self.refresh(*family, *token, *client, *creds, scope, *mutation, *from)
            }
            Op::Revoke { family, which, client, creds, mutation, from } => {
                self.revoke(*family, *which, *client, *creds, *mutation, *from)
            }
            Op::Bearer { family, token, required, header, mutation } => {
                self.bearer(*family, *token, *required, *header, *mutation)
            }
            Op::Introspect { family, which, client, creds, mutation, from } => {
                self.introspect(*family, *which, *client, *creds, *mutation, *from)
            }
            Op::RevokeFamily { family, tweak } => self.revoke_family(*family, *tweak),
            Op::RevokeSerial { grant } => self.revoke_serial_op(*grant),
            Op::SignIn { from, fail } => self.sign_in(*from, *fail),
            Op::RetryAfter { source } => self.retry_after(*source),
            Op::Purge => self.purge(),
            Op::Until { target, deadline, offset } => self.until(*target, *deadline, *offset),
            Op::Wait(s) => self.t = self.t.saturating_add(u64::from(*s)),
            Op::Jump(s) => self.t = self.t.saturating_add(u64::from(*s)),
            Op::Back(s) => self.t = self.t.saturating_sub(u64::from(*s % 16)),
            Op::SaveRestore { behind } => self.save_restore(*behind),
            Op::ForgeSnapshot { edits, cut, extend, resign, behind } => {
                self.forge_snapshot(edits, *cut, extend, *resign, *behind)
            }
            Op::Rotate { id } => self.rotate(*id),
            Op::Retire => self.retire(),
            Op::Csrf { session, other } => self.csrf(*session, *other),
        }
        self.check_tables();
        self.sweep_bearer();
    }
}
