//! Every fixed table of the crate and its policy, in one place: its capacity, what fills it, who may
//! take how much, when an entry is reclaimed, and what a client sees when it is full.
//!
//! (A documentation module: the rules are implemented where each table lives, and named here.)
//!
//! # Pending grants (`G: GrantStore`, for example [`FixedGrants<N>`](crate::grant::FixedGrants))
//! - **Filled by** device authorization requests (RFC 8628 §3.1), one slot each, 32 bytes.
//! - **Who may take how much.** Requests are counted per *source*: the peer address the transport
//!   passes in (IPv4 whole, IPv6 by /64, see [`crate::source`]). A source may take a slot only while it
//!   holds fewer live grants than there are slots left to give, so one address never holds more than
//!   half the table, a new address always finds room while any is left, and fairness only bites when
//!   the table is nearly full: on a host table of thousands, one address can run a conformance suite or
//!   a load test unthrottled. Requests with no source (a transport that does not know) share no quota.
//!   Public `client_id`s are known to everyone, so there is no per-client cap.
//! - **Reclaimed**, when a new request needs a slot, in this order: a free slot; an expired grant; an
//!   exchanged or denied one (its answer was given; a replayed exchanged code is still detected, through
//!   its token family); an *abandoned* one, undecided and not polled for
//!   [`Config::abandon_after`](crate::provider::Config::abandon_after) seconds (120 by default, many
//!   polling intervals: RFC 8628 §3.5 clients poll every `interval` seconds, so a silent device has
//!   gone; its code then stops working, and a device that does come back starts a new flow). Live
//!   undecided and approved grants are never taken.
//! - **When full**: the address over its share gets 429 `temporarily_unavailable` with `Retry-After`
//!   (when its own first grant frees up); when no slot can be reclaimed at all, every address gets 503
//!   `temporarily_unavailable` with `Retry-After` (when the first slot frees up). See [`crate::error`]
//!   for why that code.
//! - **Sustained rate**: capacity ÷ code lifetime new codes per second at the worst (every device
//!   polling until its code expires), more when requests are abandoned or decided early.
//!
//! # Token families (`F`): connected devices
//! - **Filled by** approvals: the page's approval reserves the slot (so the page never says "approved"
//!   for a device that would then be refused), the token exchange opens it; 32 bytes each.
//! - **Who may take how much**: a user may have at most
//!   [`Config::families_per_user`](crate::provider::Config::families_per_user) (16 by default) at once,
//!   reservations included. RFC 8628 gives a device no identity, so approving the same client twice is
//!   two families: both are listed, neither replaces the other.
//! - **Reclaimed** when the family expires (its refresh token, renewed at each refresh, or for a client
//!   without refresh tokens its access token), when a reservation's device code expires, and when the
//!   user revokes it on the connected-devices page ([`crate::http`]'s `/devices`, or
//!   `Provider::revoke_family`) or a client revokes a token (RFC 7009), or a replay revokes it.
//! - **When full**: the approval is refused on the page with an explanation and a link to the
//!   connected-devices page (503 when the table is full, 409 when the user is at their limit); the
//!   device keeps polling `authorization_pending` until someone frees a slot or its code expires.
//!
//! # Attempt budgets (`S`, twice): wrong user codes, failed authentication
//! - **Filled by** failures only: a wrong user code (charged to the signed-in account), a wrong client
//!   secret or unknown client, a failed sign-in on a page (both charged to the peer address). 16 bytes
//!   per source per budget.
//! - **Who may take how much**: per source, a few free failures then a graduated back-off (1 s, 2 s,
//!   4 s … up to 30 s for codes, 60 s for authentication), so a person who mistypes waits seconds, never
//!   a minute, and a guesser from one source makes about one attempt per back-off; for user codes also
//!   a global budget per window, which is what bounds guessing from many sources (below). A client is
//!   never locked out as such: an attacker who spends the budget of an address locks out only that
//!   address.
//! - **Reclaimed** when a source has been quiet for the budget's window; when every entry is taken, the
//!   source that failed longest ago is forgotten, so a new source is never refused for lack of room.
//! - **When spent**: 429 with `Retry-After` (the page, the endpoints); on the verification page the
//!   message "Too many attempts".
//!
//! # The chance of guessing a live user code
//! At most `global × (⌈T / window⌉ + 1) × L / 20^8` during a code lifetime `T` with `L` live codes
//! ([`crate::limit::guess_bound`]); it grows with `L`, so with the shipped configurations (`global` 32
//! per 60 s, `T` 600 s):
//!
//! | configuration | grant slots `L` | bound |
//! |---|---|---|
//! | the crate's sample and the Embassy gateway | 16 | 2.2·10⁻⁷ |
//! | the host gateway example | 2 048 | 2.8·10⁻⁵ |
//!
//! (With fewer codes live than slots, the chance is proportionally smaller.)
//!
//! # Connections
//! The HTTP binding's connection slots and their policy are described in [`crate::http`].
