//! # oauth2-devices
//!
//! An OAuth 2.0 **device authorization server** (RFC 8628, the "device flow") for microcontroller
//! gateways: it hands out user codes, lets a person approve a device in a browser, and issues and checks
//! the tokens. `#![no_std]`, no allocator, no `unsafe`, and no panic on any input.
//!
//! ## The sans-IO boundary
//! Like `rustls` and `quinn-proto`, the core does no I/O and reads no clock. The caller passes in:
//! - **time**: `now`, in seconds, from any monotonic origin the caller keeps for the life of its server
//!   key (Unix time, or uptime plus a persisted epoch), below 2^32;
//! - **randomness**: a [`rand_core::CryptoRng`] (a hardware RNG, or a CSPRNG seeded from one);
//! - **requests**: typed values ([`request`]) parsed from an urlencoded body ([`form`]) and headers;
//!
//! and gets back typed responses, which it writes as JSON into its own buffers ([`response`]).
//! The optional `http` feature adds an HTTP/1.1 binding over `embedded-io`; everything else is usable from
//! any transport.
//!
//! ## The model
//! - [`provider::Provider`] owns all state: a [`grant::GrantStore`] of pending grants (one per device
//!   authorization request), a fixed table of token families (one per approved grant with live tokens),
//!   and the budgets for wrong user-code guesses ([`limit`]).
//! - Clients come from a [`client::ClientRegistry`]; scopes from a [`scope::ScopeRegistry`] of up to 32
//!   names, carried as bit sets.
//! - Codes and tokens are derived with HMAC-SHA256 under a [`key::ServerKey`] (with a key id, so keys can
//!   be rotated) and verified **MAC first, then one O(1) look-up**: a forged value never touches a table.
//!
//! ## Formats (each documented where it is implemented)
//! - user code: `XXXX-XXXX` over `BCDFGHJKLMNPQRSTVWXZ`, and its normalisation: [`code`];
//! - device code (24 bytes, 32 characters): [`code`];
//! - access token (50 characters) and refresh token (39 characters): [`token`];
//! - error codes and the one HTTP status mapping: [`error`];
//! - the `slow_down` rule: the `poll` step of [`provider::Provider::token`] (documented on
//!   [`provider::SLOW_DOWN_STEP`] and in the source of `Provider::poll`): the first poll is never
//!   throttled, a poll sooner than `interval` after the last accepted one gets `slow_down` and the
//!   interval grows by 5 s.
//!
//! ## Capacities and memory
//! Every table has a const-generic capacity and a stated policy ([`policy`]): who may take how much,
//! what is reclaimed when, and what a client is told when it is full (429 or 503 with `Retry-After`,
//! never a panic or a silent eviction). Sizes on a 32-bit target:
//!
//! | item | thumbv7em | x86_64 |
//! |---|---|---|
//! | one pending grant ([`grant::PendingGrant`], in its `Option` slot) | 32 | 32 |
//! | one token family (a connected device) | 32 | 32 |
//! | one rate-limit source (two budgets of 16 bytes) | 32 | 32 |
//! | one client ([`client::Client`]) | 164 | 176 |
//! | `Provider<FixedClients<4>, FixedGrants<16>, 16, 16>` (the sample below) | 2 344 | 2 416 |
//!
//! Of the sample provider, 512 bytes are the 16 grant slots, 512 the 16 token families, 512 the 16
//! rate-limit sources of its two budgets, and most of the rest the four clients, the pre-keyed HMAC
//! state of the key ring and the `verification_uri` (140 bytes, so it can be set at run time).
//! A grant derives what it can: the device code is recomputed from its slot and serial, never stored.
//!
//! (The figures are checked on the host by `tests/sizes.rs` and on the Cortex-M4 by the QEMU run.)
//!
//! ## Example: the whole flow
//! ```
//! use oauth2_devices::prelude::*;
//! use rand_core::SeedableRng;
//!
//! let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7); // use a hardware RNG on a device
//! static SCOPES: &[&str] = &["profile", "sensors:read"];
//! let scopes = ScopeRegistry::new(SCOPES).unwrap();
//! let mut clients = FixedClients::<4>::new();
//! clients.add(Client::public("tv-app", "Living-room TV").unwrap()).unwrap();
//! let mut provider: Provider<FixedClients<4>, FixedGrants<16>, 16, 16> = Provider::build(
//!     Config::new("https://gw.local/activate"),
//!     ServerKey::new(1, &[0x42; 32]), // 32 secret bytes from protected storage
//!     scopes,
//!     clients,
//!     FixedGrants::new(),
//!     &mut rng,
//! ).unwrap();
//!
//! // 1. The device asks for codes (RFC 8628 §3.1).
//! let tv = ClientCredentials::new("tv-app", None);
//! let auth = provider
//!     .device_authorization(0, &DeviceAuthorizationRequest { client: tv, scope: Some("profile") }, &mut rng)
//!     .unwrap();
//! let mut json = [0u8; 512];
//! let n = auth.write_json(provider.config(), &mut json).unwrap();
//! assert!(core::str::from_utf8(&json[..n]).unwrap().contains("\"interval\":5"));
//!
//! // 2. It polls: pending.
//! let poll = TokenRequest { client: tv, grant: Grant::DeviceCode { device_code: &auth.device_code } };
//! assert_eq!(provider.token(5, &poll).unwrap_err().code, ErrorCode::AuthorizationPending);
//!
//! // 3. A signed-in user (id 42) types the code on the verification page and approves.
//! let typed = auth.user_code.display().to_ascii_lowercase();
//! provider.approve(20, &typed, b"user:42", 42, scopes.parse("profile").unwrap()).unwrap();
//!
//! // 4. The next poll gets the tokens.
//! let tokens = provider.token(20, &poll).unwrap();
//!
//! // 5. A protected resource checks the bearer token (the seed's `require_oauth`).
//! let mut header = heapless::String::<64>::new();
//! header.push_str("Bearer ").unwrap();
//! header.push_str(&tokens.access_token).unwrap();
//! let profile = scopes.parse("profile").unwrap();
//! assert_eq!(provider.check_bearer(25, Some(&header), profile).unwrap().user, 42);
//!
//! // 6. The device code is single-use: replaying it fails and revokes what it issued.
//! assert_eq!(provider.token(30, &poll).unwrap_err().code, ErrorCode::InvalidGrant);
//! assert_eq!(provider.check_bearer(31, Some(&header), profile), Err(BearerError::Revoked));
//! ```
//!
//! ## Features
//! - `http` (default): the HTTP/1.1 binding.
//! - `page` (default): its HTML pages, the verification page and the connected-devices page.
//! - `log` / `defmt`: logging through either crate (mutually exclusive; see `fmt.rs`).
//! - `fuzzing`: `#[doc(hidden)]` entry points for the targets in `fuzz/`.
#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

mod fmt;

mod b64;

pub mod client;
pub mod code;
pub mod error;
mod family;
pub mod form;
pub mod grant;
#[cfg(feature = "http")]
pub mod http;
pub mod key;
pub mod limit;
pub mod policy;
pub mod provider;
pub mod request;
pub mod response;
pub mod scope;
pub mod snapshot;
pub mod source;
pub mod storage;
pub mod token;

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;

pub use error::{BufferTooSmall, ErrorCode, OAuthError};
/// The `heapless` crate, whose fixed-capacity strings carry codes and tokens in this API.
pub use heapless;

pub mod prelude {
    //! Everything a whole device flow names: building the provider, the requests, the answers, the
    //! errors, and saving the state. `use oauth2_devices::prelude::*;` and the README's example
    //! compiles with nothing else.
    pub use crate::client::{Client, ClientRegistry, FixedClients, SecretHash};
    pub use crate::code::UserCode;
    pub use crate::error::{BufferTooSmall, ErrorCode, OAuthError};
    pub use crate::form::Form;
    pub use crate::grant::{FixedGrants, GrantState, GrantStore};
    pub use crate::key::{KeyRing, ServerKey};
    pub use crate::provider::{
        ApproveError, BearerError, Config, DeviceAuthorization, DeviceInfo, GrantInfo, Introspection, Provider,
        TokenInfo, TokenResponse, UserId,
    };
    pub use crate::request::{ClientCredentials, DeviceAuthorizationRequest, Grant, TokenQuery, TokenRequest};
    pub use crate::scope::{ScopeRegistry, ScopeSet};
    pub use crate::snapshot::{max_snapshot_len, ClockTrust, Restored, SnapshotError};
    pub use crate::token::{AccessClaims, AccessToken, RefreshToken};
}

// The types of a flow at the crate root too, so that paths stay short without a glob import.
pub use client::{Client, FixedClients, SecretHash};
pub use grant::FixedGrants;
pub use key::ServerKey;
pub use provider::{Config, Provider};
pub use request::{ClientCredentials, DeviceAuthorizationRequest, Grant, TokenRequest};
pub use scope::{ScopeRegistry, ScopeSet};

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
