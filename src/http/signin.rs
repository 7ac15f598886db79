//! Sign-in for a fixed table of users over HTTP Basic: what a gateway with configured users (a
//! demo, a device with one administrator) needs for [`Application::user`](super::Application::user),
//! so that no gateway writes its own comparison.
//!
//! Logins and passwords are compared as SHA-256 digests with [`subtle`], and every entry of the
//! table is compared on every sign-in, so neither the time nor the path taken depends on which
//! bytes matched, nor on the length of a password. Failed sign-ins are budgeted per address by the
//! binding itself (see the crate's `policy` module), whatever the application's check is.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{basic_auth, Request, User};
use crate::provider::UserId;

/// One configured user.
#[derive(Debug, Clone, Copy)]
pub struct StaticUser<'a> {
    /// What the user types as the Basic user-id.
    pub login: &'a str,
    /// Their password.
    pub password: &'a str,
    /// The id carried in tokens.
    pub id: UserId,
    /// The name the pages show.
    pub name: &'a str,
}

/// A fixed table of users, checked against a request's `Authorization: Basic` header.
///
/// ```
/// use oauth2_devices::http::{StaticUser, StaticUsers};
///
/// static USERS: StaticUsers<'static> =
///     StaticUsers::new(&[StaticUser { login: "alice", password: "wonderland", id: 1, name: "Alice" }]);
/// assert_eq!(USERS.by_id(1).map(|u| u.name), Some("Alice"));
/// // In `Application::user`: `USERS.sign_in(req)`.
/// ```
#[derive(Debug, Clone, Copy)]
pub struct StaticUsers<'a> {
    users: &'a [StaticUser<'a>],
}

impl<'a> StaticUsers<'a> {
    /// The table.
    pub const fn new(users: &'a [StaticUser<'a>]) -> Self {
        Self { users }
    }

    /// The users.
    pub const fn users(&self) -> &'a [StaticUser<'a>] {
        self.users
    }

    /// The user with this id (for a protected route that shows who called it).
    pub fn by_id(&self, id: UserId) -> Option<&'a StaticUser<'a>> {
        self.users.iter().find(|u| u.id == id)
    }

    /// The user whose login and password the request's `Authorization: Basic` header carries.
    pub fn sign_in(&self, req: &Request<'_>) -> Option<User> {
        let mut scratch = [0u8; 192];
        let (login, password) = basic_auth(req.header("authorization")?, &mut scratch)?;
        let (login, password) = (Sha256::digest(login), Sha256::digest(password));
        let mut found = None;
        for u in self.users {
            let hit = Sha256::digest(u.login).ct_eq(&login) & Sha256::digest(u.password).ct_eq(&password);
            if bool::from(hit) {
                found = Some(User::new(u.id, u.name));
            }
        }
        found
    }
}
