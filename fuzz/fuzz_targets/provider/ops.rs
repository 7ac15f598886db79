//! The operations: the fuzz input (a sequence of `Op`s) and what each does to the provider and the
//! model.

use super::model::*;
use super::*;

// ----- the input -----

#[derive(Debug, Arbitrary)]
pub(crate) struct Input {
    pub(crate) seed: u64,
    pub(crate) start: u32,
    pub(crate) ops: Vec<Op>,
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

#[derive(Debug, Clone, Arbitrary)]
pub(crate) enum Op {
    /// A whole device flow in one step (authorize, approve the real code, poll), to fill the tables.
    Flow {
        client: u8,
        user: u8,
    },
    Authorize {
        client: u8,
        creds: Creds,
        scope: ScopeArg,
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
    },
    Refresh {
        family: u8,
        token: u8,
        client: Option<u8>,
        creds: Creds,
        scope: ScopeArg,
        mutation: Mutation,
    },
    Revoke {
        family: u8,
        which: Which,
        client: Option<u8>,
        creds: Creds,
        mutation: Mutation,
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
    },
    Purge,
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

    pub(crate) fn authorize(&mut self, client: u8, creds: Creds, scope: &ScopeArg) {
        let index = client % 5;
        let (creds, authenticated) = creds_for(index, creds);
        let text = scope_text(scope);
        let before_serial = next_serial(&self.p);
        let req = DeviceAuthorizationRequest { client: creds, scope: text.as_deref() };
        let got = self.p.device_authorization(self.t, &req, &mut self.rng);
        let now = self.tick();
        let want: Result<(u32, usize), ErrorCode> = (|| {
            if !authenticated {
                return Err(ErrorCode::InvalidClient);
            }
            let spec = CLIENTS[usize::from(index)];
            let scopes = match &text {
                None => spec.default,
                Some(s) => parse_scope(s).ok_or(ErrorCode::InvalidScope)?,
            };
            if scopes & !spec.allowed != 0 {
                return Err(ErrorCode::InvalidScope);
            }
            // The documented slot choice: a free slot; else the expired grant that expired first;
            // else the exchanged grant that expires first; live undecided/approved/denied never.
            let occupied = |s: usize| self.grants.iter().find(|g| g.in_table && g.slot == s);
            if let Some(free) = (0..GRANT_SLOTS).find(|&s| occupied(s).is_none()) {
                return Ok((scopes, free));
            }
            (0..GRANT_SLOTS)
                .filter_map(|s| {
                    let g = occupied(s)?;
                    if now >= g.expires_at {
                        Some(((0, g.expires_at), s))
                    } else if g.state == MState::Exchanged {
                        Some(((1, g.expires_at), s))
                    } else {
                        None
                    }
                })
                .min()
                .map(|(_, s)| (scopes, s))
                .ok_or(ErrorCode::TemporarilyUnavailable)
        })();
        if want == Err(ErrorCode::TemporarilyUnavailable) {
            self.stats.grants_full += 1;
        }
        match (got, want) {
            (Ok(auth), Ok((scopes, slot))) => {
                let claims = DeviceCodeClaims::decode(&auth.device_code, &self.ring, client_id(index))
                    .expect("a fresh device code verifies");
                assert_eq!(
                    claims,
                    DeviceCodeClaims { key_id: self.current.id, slot: slot as u16, serial: before_serial }
                );
                assert_eq!(next_serial(&self.p), before_serial.wrapping_add(1));
                assert_eq!((auth.expires_in, auth.interval), (60, 5));
                for g in self.grants.iter().filter(|g| g.in_table) {
                    assert_ne!(g.user_code, auth.user_code, "user code reissued while in the table");
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
                    serial: before_serial,
                    requested: scopes,
                    expires_at: now.saturating_add(60),
                    in_table: true,
                    state: MState::Undecided,
                    polled: false,
                    last_poll: now,
                    interval: 5,
                    issued: false,
                    denied: false,
                });
                self.bump();
            }
            (got, want) => {
                assert_eq!(code_of(&got), want.map(|_| ()), "device_authorization {req:?}");
                assert_eq!(next_serial(&self.p), before_serial);
            }
        }
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
        if got == Err(ApproveError::RateLimited) {
            self.stats.rate_limited += 1;
            self.check_rate_limited(source);
            return;
        }
        let Some(i) = self.find(&input) else {
            assert_eq!(got, Err(ApproveError::InvalidCode), "{input:?} matches no grant");
            self.record_failure(source);
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
                Some(_) => Ok(()),
            }
        };
        if want.is_ok() {
            match decide {
                None => {}
                Some(Some((user, granted))) => {
                    let g = &mut self.grants[i];
                    g.state = MState::Approved { user, scopes: granted };
                    self.stats.approved += 1;
                    g.requested = granted;
                    self.bump();
                }
                Some(None) => {
                    let g = &mut self.grants[i];
                    g.state = MState::Denied;
                    self.stats.denied += 1;
                    g.denied = true;
                    self.bump();
                }
            }
        }
        assert_eq!(got, want.map(|()| self.info_of(i)), "verification of {input:?}");
    }

    pub(crate) fn check_tokens(&mut self, tokens: &TokenResponse, family: usize, scopes: u32, now: u32) {
        let f = &self.families[family];
        let id = client_id(f.client);
        let claims = AccessClaims::verify(&tokens.access_token, &self.ring, id).expect("issued access token verifies");
        let expires_at = now.saturating_add(30).min(f.expires_at);
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

    /// The slot `issue` opens a family in: the first one that is free or holds an expired family.
    pub(crate) fn free_family_slot(&self, now: u32) -> Option<usize> {
        (0..FAMILY_SLOTS).find(|&s| !self.families.iter().any(|f| f.slot == s && self.live_family(f, now)))
    }

    pub(crate) fn poll(&mut self, grant: u8, client: Option<u8>, creds: Creds, mutation: Mutation) {
        let Some(gi) =
            nth_back(&self.grants, grant).map(|_| self.grants.len() - 1 - usize::from(grant) % self.grants.len())
        else {
            return;
        };
        let owner = self.grants[gi].client;
        let index = client.map_or(owner, |c| c % 5);
        let (creds, authenticated) = creds_for(index, creds);
        let code = mutate(&self.grants[gi].device_code, mutation);
        let req = TokenRequest { client: creds, grant: Grant::DeviceCode { device_code: &code } };
        let got = self.p.token(self.t, &req);
        let now = self.tick();
        if let Err(e) = &got {
            let mut json = [0u8; 256];
            assert!(e.write_json(&mut json).is_ok());
        }
        if !authenticated {
            assert_eq!(code_of(&got), Err(ErrorCode::InvalidClient));
            return;
        }
        // The grant whose device code this exact string is, if any: anything else is a forgery.
        let Some(gi) = self.grants.iter().rposition(|g| g.device_code == code) else {
            assert_eq!(code_of(&got), Err(ErrorCode::InvalidGrant), "forged device code {code:?} accepted");
            return;
        };
        let g = self.grants[gi].clone();
        if !self.valid(g.key) || g.client != index {
            assert_eq!(code_of(&got), Err(ErrorCode::InvalidGrant), "{g:?} by client {index}");
            return;
        }
        // A spent code is a replay whatever its age, and even once its grant left the table: what it
        // issued is revoked while its family is in the table.
        if g.state == MState::Exchanged {
            assert_eq!(code_of(&got), Err(ErrorCode::InvalidGrant), "replay of {g:?}");
            self.stats.code_replays += 1;
            if self.revoke_serial(g.serial) {
                self.bump();
            }
            self.assert_family_dead(g.serial);
            return;
        }
        if !g.in_table {
            assert_eq!(code_of(&got), Err(ErrorCode::InvalidGrant), "{g:?} by client {index}");
            return;
        }
        if now >= g.expires_at {
            assert_eq!(code_of(&got), Err(ErrorCode::ExpiredToken), "{g:?} at {now}");
            return;
        }
        match g.state {
            MState::Undecided => {
                let gm = &mut self.grants[gi];
                if g.polled && now < g.last_poll.saturating_add(u32::from(g.interval)) {
                    assert_eq!(code_of(&got), Err(ErrorCode::SlowDown));
                    self.stats.slow_down += 1;
                    gm.interval = gm.interval.saturating_add(5);
                } else {
                    assert_eq!(code_of(&got), Err(ErrorCode::AuthorizationPending));
                    gm.polled = true;
                    gm.last_poll = now;
                }
            }
            MState::Denied => assert_eq!(code_of(&got), Err(ErrorCode::AccessDenied)),
            MState::Exchanged => unreachable!("handled above"),
            MState::Approved { user, scopes } => {
                let Some(slot) = self.free_family_slot(now) else {
                    assert_eq!(code_of(&got), Err(ErrorCode::TemporarilyUnavailable));
                    self.stats.families_full += 1;
                    return;
                };
                self.stats.issued += 1;
                let tokens = got.unwrap_or_else(|e| panic!("approved {g:?} polled at {now}: {e:?}"));
                // The safety properties, by name.
                assert!(!g.issued, "a device code yielded tokens twice");
                assert!(!g.denied, "tokens issued for a denied grant");
                assert!(now < g.expires_at, "tokens issued after the grant expired");
                for f in self.families.iter_mut().filter(|f| f.in_table && f.slot == slot) {
                    assert!(now >= f.expires_at, "a live family was overwritten");
                    f.in_table = false;
                }
                let refresh = CLIENTS[usize::from(index)].refresh;
                let lifetime = if refresh { 120 } else { 30 };
                self.families.push(MFamily {
                    slot,
                    serial: g.serial,
                    client: index,
                    user,
                    scopes,
                    expires_at: now.saturating_add(lifetime),
                    in_table: true,
                    refresh,
                    counter: 0,
                    refresh_tokens: Vec::new(),
                    access: Vec::new(),
                });
                let gm = &mut self.grants[gi];
                gm.state = MState::Exchanged;
                gm.issued = true;
                self.bump();
                self.check_tokens(&tokens, self.families.len() - 1, scopes, now);
            }
        }
    }

    pub(crate) fn refresh(
        &mut self,
        family: u8,
        token: u8,
        client: Option<u8>,
        creds: Creds,
        scope: &ScopeArg,
        m: Mutation,
    ) {
        let Some(f) = nth_back(&self.families, family) else { return };
        let Some((text, _)) = nth_back(&f.refresh_tokens, token) else { return };
        let text = mutate(text, m);
        let index = client.map_or(f.client, |c| c % 5);
        let (creds, authenticated) = creds_for(index, creds);
        let scope_text = scope_text(scope);
        let req = TokenRequest {
            client: creds,
            grant: Grant::RefreshToken { refresh_token: &text, scope: scope_text.as_deref() },
        };
        let got = self.p.token(self.t, &req);
        let now = self.tick();
        if !authenticated {
            assert_eq!(code_of(&got), Err(ErrorCode::InvalidClient));
            return;
        }
        if !CLIENTS[usize::from(index)].refresh {
            assert_eq!(code_of(&got), Err(ErrorCode::UnauthorizedClient));
            return;
        }
        let found = self.families.iter().enumerate().rev().find_map(|(fi, f)| {
            f.refresh_tokens.iter().position(|(t, _)| *t == text).map(|c| (fi, c as u32, f.refresh_tokens[c].1))
        });
        let Some((fi, counter, key)) = found else {
            assert_eq!(code_of(&got), Err(ErrorCode::InvalidGrant), "forged refresh token {text:?} accepted");
            return;
        };
        let f = self.families[fi].clone();
        if !self.valid(key) || f.client != index || !f.in_table || now >= f.expires_at {
            assert_eq!(code_of(&got), Err(ErrorCode::InvalidGrant));
            return;
        }
        if counter != f.counter {
            assert_eq!(code_of(&got), Err(ErrorCode::InvalidGrant), "replayed refresh token accepted");
            self.stats.refresh_replays += 1;
            self.families[fi].in_table = false;
            self.bump();
            self.assert_family_dead(f.serial);
            return;
        }
        let scopes = match &scope_text {
            None => f.scopes,
            Some(s) => match parse_scope(s) {
                Some(bits) if bits & !f.scopes == 0 => bits,
                _ => {
                    assert_eq!(code_of(&got), Err(ErrorCode::InvalidScope));
                    return;
                }
            },
        };
        let tokens = got.unwrap_or_else(|e| panic!("refresh of {f:?} at {now}: {e:?}"));
        self.stats.refreshed += 1;
        let fm = &mut self.families[fi];
        fm.counter += 1;
        fm.expires_at = now.saturating_add(120);
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

    pub(crate) fn revoke(&mut self, family: u8, which: Which, client: Option<u8>, creds: Creds, m: Mutation) {
        let Some(text) = self.pick_token(family, which, m) else { return };
        let owner = self.lookup(&text).map_or(0, |(fi, _, _)| self.families[fi].client);
        let index = client.map_or(owner, |c| c % 5);
        let (creds, authenticated) = creds_for(index, creds);
        let got = self.p.revoke(self.t, &TokenQuery { client: creds, token: &text });
        if !authenticated {
            assert_eq!(got.map_err(|e| e.code), Err(ErrorCode::InvalidClient));
            return;
        }
        assert_eq!(got, Ok(()));
        if let Some((fi, key, _)) = self.lookup(&text) {
            let f = &self.families[fi];
            if self.valid(key) && f.client == index && f.in_table {
                self.families[fi].in_table = false;
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

    pub(crate) fn introspect(&mut self, family: u8, which: Which, client: Option<u8>, creds: Creds, m: Mutation) {
        let Some(text) = self.pick_token(family, which, m) else { return };
        let index = client.map_or(1, |c| c % 5);
        let (creds, authenticated) = creds_for(index, creds);
        let got = self.p.introspect(self.t, &TokenQuery { client: creds, token: &text });
        self.observe();
        if !authenticated || !CLIENTS[usize::from(index)].confidential {
            assert_eq!(got.map_err(|e| e.code), Err(ErrorCode::InvalidClient));
            return;
        }
        let now = self.seen();
        let want = match self.lookup(&text) {
            Some((fi, _, Some(a))) => {
                self.expected_bearer(&self.families[fi], a, 0).map_or(Introspection::Inactive, Introspection::Access)
            }
            Some((fi, key, None)) => {
                let f = &self.families[fi];
                let current = f.refresh_tokens.get(f.counter as usize).is_some_and(|(t, _)| *t == text);
                if self.valid(key) && current && self.live_family(f, now) {
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
        let before_serial = next_serial(&self.p);
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
        assert_eq!(next_serial(&self.p), before_serial.wrapping_add(SERIAL_RESTORE_GAP));
        if at < self.clock.get() {
            assert_eq!(restored, Restored { grants: 0, families: 0, clock_was_behind: true });
            self.stats.restored_behind += 1;
            self.clock.set(at);
            self.t = u64::from(at);
            self.grants.iter_mut().for_each(|g| g.in_table = false);
            self.families.iter_mut().for_each(|f| f.in_table = false);
            // The guess budgets live in RAM and are not part of a snapshot: see `Failure::epoch`.
            self.epoch += 1;
            return;
        }
        let now = self.clock.get();
        let mut grants = 0;
        for g in self.grants.iter_mut().filter(|g| g.in_table) {
            if now >= g.expires_at {
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
        let kept: Vec<_> = grants_before.into_iter().filter(|(_, g)| now < g.expires_at).collect();
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
            Op::Authorize { client, creds, scope } => self.authorize(*client, *creds, scope),
            Op::Flow { client, user } => {
                let before = self.grants.len();
                self.authorize(client % 4, Creds::Right, &ScopeArg::Default);
                if self.grants.len() > before {
                    let granted = self.grants[before].requested;
                    let code = CodeRef::Real { grant: 0, style: *user };
                    self.verification(&code, 5, Some(Some((u32::from(*user), granted))));
                    self.poll(0, None, Creds::Right, Mutation::None);
                }
            }
            Op::Info { code, source } => self.verification(code, *source, None),
            Op::Approve { code, source, user, granted } => {
                self.verification(code, *source, Some(Some((u32::from(*user), u32::from(*granted) & 0b1111))))
            }
            Op::Deny { code, source } => self.verification(code, *source, Some(None)),
            Op::Poll { grant, client, creds, mutation } => self.poll(*grant, *client, *creds, *mutation),
            Op::Refresh { family, token, client, creds, scope, mutation } => {
                self.refresh(*family, *token, *client, *creds, scope, *mutation)
            }
            Op::Revoke { family, which, client, creds, mutation } => {
                self.revoke(*family, *which, *client, *creds, *mutation)
            }
            Op::Bearer { family, token, required, header, mutation } => {
                self.bearer(*family, *token, *required, *header, *mutation)
            }
            Op::Introspect { family, which, client, creds, mutation } => {
                self.introspect(*family, *which, *client, *creds, *mutation)
            }
            Op::Purge => self.purge(),
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
