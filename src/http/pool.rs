//! Who gets a connection: a fixed-capacity pool of connection slots that knows every slot's state
//! and peer.
//!
//! # The policy
//! - **Capacity**: `N` slots (at most [`Pool::limit`] of them used), one per connection being served.
//!   On a board, keep one socket out of the pool, always listening, so a new peer reaches
//!   [`Pool::admit`] at all (embassy-net answers a SYN with a reset when no socket listens).
//! - **Per peer**: one peer (an IPv4 address, or an IPv6 /64, as in [`crate::source::of_ip`]) holds at
//!   most [`Pool::per_peer`] slots. The host default, 16, lets one client run a load test with 16
//!   keep-alive connections, or a browser open its six, without being throttled.
//! - **Admission**, in this order: a peer at its cap gets one of its own idle connections recycled
//!   (closed to admit the new one), else it is refused; below its cap it gets a free slot; if none is
//!   free, an idle keep-alive connection is closed to admit it — the one of the peer holding the most
//!   slots, the longest idle among those — then a connection still draining after its last response,
//!   then a connection that has sent nothing since it was accepted [`Pool::grace`] ago or longer;
//!   only when every slot is reading or writing a request, or is a connection accepted less than the
//!   grace ago, is the new connection refused.
//! - **Grace**: a connection just accepted has not had the time to send its first request (a client
//!   connects, then writes), so for [`FRESH_GRACE_MS`] it is never closed to admit another: closing it
//!   would only trade one client's request for another's.
//! - **Refused**: the peer is answered `503` with `Retry-After` ([`super::status::busy`]) and closed.
//! - **Reclaimed**: an idle slot when someone needs it (above) or at the idle deadline; a reading
//!   slot at the head deadline, a draining one at the drain deadline ([`super::conn`]). A request
//!   being read or answered is never cut to admit another.
//!
//! A slot given to a new connection after eviction gets a new [`Ticket`], so the evicted
//! connection's last updates (and its release) are ignored: the slot is the new owner's at once,
//! while the old connection finishes closing.
//!
//! The pool is plain data with no lock: share it behind whatever lock the server has (a
//! `Mutex<Pool<N>>` on a host, a blocking mutex on a board), and update it from the timed drivers'
//! [`super::Timing::on_state`] callback.

use core::net::IpAddr;

use super::conn::State;

/// Slots one peer may hold by default on a host.
pub const HOST_PER_PEER: usize = 16;
/// Slots one peer may hold on a board with 4 sockets, one of them always listening: 2 of the 3
/// pooled, so a peer can never hold every socket that serves.
pub const EMBEDDED_PER_PEER: usize = 2;
/// The `Retry-After` of a refusal, in seconds.
pub const RETRY_AFTER: u32 = 1;
/// How long a new connection may wait for its first request before the pool may close it for
/// another, in milliseconds.
pub const FRESH_GRACE_MS: u64 = 1_000;

/// A peer's key: the bytes of [`crate::source::of_ip`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Peer {
    bytes: [u8; 8],
    len: u8,
}

impl Peer {
    fn of(ip: IpAddr) -> Self {
        let (bytes, len) = crate::source::of_ip(ip);
        Self { bytes, len: len as u8 }
    }
}

/// What a slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// Nobody.
    Free,
    /// A connection reading or writing a request.
    Busy,
    /// A connection accepted at the given time, waiting for its first request.
    Fresh(u64),
    /// A keep-alive connection waiting for its next request since the given time.
    Idle(u64),
    /// A connection draining after its last response since the given time.
    Draining(u64),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    slot: Slot,
    peer: Peer,
    generation: u32,
    /// Set at its first request: an idle connection is then a keep-alive one, not a fresh one.
    asked: bool,
}

/// One connection's claim on a slot; stale once the slot was given to another connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    index: usize,
    generation: u32,
}

impl Ticket {
    /// The slot's index (below `N`): where the server keeps what it needs to close it.
    pub const fn index(&self) -> usize {
        self.index
    }
}

/// What [`Pool::admit`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Serve the connection in this slot.
    Slot(Ticket),
    /// Close the idle (or draining) connection of slot `slot` (shut its socket down so its blocked
    /// read returns), then serve the new one with `then`, which is the same slot.
    EvictIdle {
        /// The slot whose connection must close now.
        slot: usize,
        /// The new connection's ticket.
        then: Ticket,
    },
    /// Answer `503` with `Retry-After: retry_after` seconds and close.
    Refuse {
        /// Seconds.
        retry_after: u32,
    },
}

/// A fixed-capacity pool of connection slots (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct Pool<const N: usize> {
    entries: [Entry; N],
    limit: usize,
    per_peer: usize,
    grace: u64,
}

impl<const N: usize> Default for Pool<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Pool<N> {
    /// `N` free slots, [`HOST_PER_PEER`] per peer (at most `N`), a grace of [`FRESH_GRACE_MS`].
    pub const fn new() -> Self {
        let free = Entry { slot: Slot::Free, peer: Peer { bytes: [0; 8], len: 0 }, generation: 0, asked: false };
        let per_peer = if HOST_PER_PEER < N { HOST_PER_PEER } else { N };
        Self { entries: [free; N], limit: N, per_peer, grace: FRESH_GRACE_MS }
    }

    /// Protects a new connection for `ms` milliseconds after its accept (see the [module docs](self)).
    pub const fn with_grace(mut self, ms: u64) -> Self {
        self.grace = ms;
        self
    }

    /// The grace of a new connection, in milliseconds.
    pub const fn grace(&self) -> u64 {
        self.grace
    }

    /// Uses only the first `limit` slots (1 to `N`).
    pub const fn with_limit(mut self, limit: usize) -> Self {
        self.limit = if limit == 0 {
            1
        } else if limit > N {
            N
        } else {
            limit
        };
        self
    }

    /// Lets one peer hold at most `per_peer` slots (at least 1).
    pub const fn with_per_peer(mut self, per_peer: usize) -> Self {
        self.per_peer = if per_peer == 0 { 1 } else { per_peer };
        self
    }

    /// Slots in use.
    pub const fn limit(&self) -> usize {
        self.limit
    }

    /// Slots one peer may hold.
    pub const fn per_peer(&self) -> usize {
        self.per_peer
    }

    fn used(&self) -> &[Entry] {
        self.entries.get(..self.limit).unwrap_or(&self.entries)
    }

    /// Slots taken.
    pub fn taken(&self) -> usize {
        self.used().iter().filter(|e| e.slot != Slot::Free).count()
    }

    /// Slots `ip`'s peer holds.
    pub fn held_by(&self, ip: IpAddr) -> usize {
        self.held(Peer::of(ip))
    }

    fn held(&self, peer: Peer) -> usize {
        self.used().iter().filter(|e| e.slot != Slot::Free && e.peer == peer).count()
    }

    /// What slot `index` holds (`Free` out of range).
    pub fn slot(&self, index: usize) -> Slot {
        self.used().get(index).map_or(Slot::Free, |e| e.slot)
    }

    /// Decides on a new connection from `ip` at `now` (see the [module docs](self)).
    pub fn admit(&mut self, ip: IpAddr, now: u64) -> Admit {
        let peer = Peer::of(ip);
        let held = self.held(peer);
        let victim = if held >= self.per_peer {
            self.victim(now, Some(peer))
        } else if let Some(index) = self.used().iter().position(|e| e.slot == Slot::Free) {
            return Admit::Slot(self.take(index, peer));
        } else {
            self.victim(now, None)
        };
        match victim {
            Some(index) => Admit::EvictIdle { slot: index, then: self.take(index, peer) },
            None => Admit::Refuse { retry_after: RETRY_AFTER },
        }
    }

    /// The slot to reclaim (of `only`, if given): an idle one, then a draining one, then a fresh one
    /// past its grace; among equals, the peer holding the most slots, then the longest waiting.
    fn victim(&self, now: u64, only: Option<Peer>) -> Option<usize> {
        let mut best: Option<(usize, (u8, usize, u64))> = None;
        for (index, e) in self.used().iter().enumerate() {
            if only.is_some_and(|p| p != e.peer) {
                continue;
            }
            let (rank, since) = match e.slot {
                Slot::Idle(since) => (3, since),
                Slot::Draining(since) => (2, since),
                Slot::Fresh(since) if now.saturating_sub(since) >= self.grace => (1, since),
                Slot::Free | Slot::Busy | Slot::Fresh(_) => continue,
            };
            let key = (rank, self.held(e.peer), now.saturating_sub(since));
            if best.is_none_or(|(_, b)| key > b) {
                best = Some((index, key));
            }
        }
        best.map(|(index, _)| index)
    }

    fn take(&mut self, index: usize, peer: Peer) -> Ticket {
        let mut generation = 0;
        if let Some(e) = self.entries.get_mut(index) {
            e.generation = e.generation.wrapping_add(1);
            generation = e.generation;
            // Busy from admission to its first state (idle, so fresh).
            *e = Entry { slot: Slot::Busy, peer, generation, asked: false };
        }
        Ticket { index, generation }
    }

    fn entry(&mut self, t: Ticket) -> Option<&mut Entry> {
        self.entries.get_mut(t.index).filter(|e| e.generation == t.generation && e.slot != Slot::Free)
    }

    /// The connection of `t` entered `state` at `now` (ignored once the slot was reassigned).
    pub fn set(&mut self, t: Ticket, state: State, now: u64) {
        if let Some(e) = self.entry(t) {
            if state != State::Idle {
                e.asked = true;
            }
            e.slot = match state {
                State::Idle if e.asked => Slot::Idle(now),
                State::Idle => Slot::Fresh(now),
                State::Reading | State::Writing => Slot::Busy,
                State::Draining => Slot::Draining(now),
            };
        }
    }

    /// The connection of `t` closed: its slot is free (ignored once the slot was reassigned).
    pub fn release(&mut self, t: Ticket) {
        if let Some(e) = self.entry(t) {
            e.slot = Slot::Free;
        }
    }

    /// True while `t` still owns its slot.
    pub fn owns(&self, t: Ticket) -> bool {
        self.entries.get(t.index).is_some_and(|e| e.generation == t.generation && e.slot != Slot::Free)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, Ipv6Addr};

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
    const C: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 4));

    /// `t` answered a request at `now` and waits, idle, for the next.
    fn keep_alive<const N: usize>(p: &mut Pool<N>, t: Ticket, now: u64) {
        p.set(t, State::Writing, now);
        p.set(t, State::Idle, now);
    }

    fn slot(a: Admit) -> Ticket {
        match a {
            Admit::Slot(t) => t,
            other => panic!("expected a slot, got {other:?}"),
        }
    }

    #[test]
    fn free_slots_first_then_refusal_when_all_busy() {
        let mut p = Pool::<4>::new();
        let ts: Vec<_> = (0..4).map(|i| slot(p.admit(if i % 2 == 0 { A } else { B }, 0))).collect();
        assert_eq!(ts.iter().map(|t| t.index()).collect::<Vec<_>>(), [0, 1, 2, 3]);
        assert_eq!((p.taken(), p.held_by(A), p.held_by(B)), (4, 2, 2));
        for t in &ts {
            p.set(*t, State::Reading, 1);
        }
        assert_eq!(p.admit(C, 2), Admit::Refuse { retry_after: RETRY_AFTER });
        // A released slot is free again.
        p.release(ts[1]);
        assert_eq!(p.slot(1), Slot::Free);
        assert_eq!(slot(p.admit(C, 3)).index(), 1);
    }

    #[test]
    fn full_pool_evicts_idle_of_the_biggest_holder_longest_idle_first() {
        let mut p = Pool::<4>::new();
        let a0 = slot(p.admit(A, 0));
        let a1 = slot(p.admit(A, 0));
        let a2 = slot(p.admit(A, 0));
        let b0 = slot(p.admit(B, 0));
        keep_alive(&mut p, a0, 20);
        keep_alive(&mut p, a1, 10);
        p.set(a2, State::Reading, 10);
        // B's connection has been idle longest, but A holds more slots: A's longest idle goes.
        keep_alive(&mut p, b0, 1);
        let Admit::EvictIdle { slot, then } = p.admit(C, 30) else { panic!("evict") };
        assert_eq!((slot, then.index()), (a1.index(), a1.index()));
        // The evicted connection's ticket is stale: its updates and release change nothing.
        assert!(!p.owns(a1) && p.owns(then));
        keep_alive(&mut p, a1, 31);
        p.release(a1);
        assert_eq!(p.slot(then.index()), Slot::Busy);
        // Now A and B each hold... A: a0 (idle), a2 (busy); B: b0 (idle); C: then (busy). Tie on
        // holders between A (2) and... A still holds most: a0 goes next.
        let Admit::EvictIdle { slot, .. } = p.admit(C, 40) else { panic!("evict") };
        assert_eq!(slot, a0.index());
    }

    #[test]
    fn idle_before_draining_and_never_busy() {
        let mut p = Pool::<2>::new();
        let a = slot(p.admit(A, 0));
        let b = slot(p.admit(B, 0));
        p.set(a, State::Draining, 0);
        keep_alive(&mut p, b, 5);
        let Admit::EvictIdle { slot, then } = p.admit(C, 6) else { panic!("evict") };
        assert_eq!(slot, b.index());
        p.set(then, State::Writing, 6);
        // Only the draining one is left to reclaim.
        let Admit::EvictIdle { slot, then } = p.admit(C, 7) else { panic!("evict") };
        assert_eq!(slot, a.index());
        p.set(then, State::Reading, 7);
        assert!(matches!(p.admit(C, 8), Admit::Refuse { .. }));
    }

    #[test]
    fn a_peer_at_its_cap_recycles_its_own_idle_or_is_refused() {
        let mut p = Pool::<8>::new().with_per_peer(2);
        assert_eq!(p.per_peer(), 2);
        let a0 = slot(p.admit(A, 0));
        let a1 = slot(p.admit(A, 0));
        p.set(a0, State::Reading, 0);
        p.set(a1, State::Reading, 0);
        // Free slots remain, but A is at its cap.
        assert!(matches!(p.admit(A, 1), Admit::Refuse { .. }));
        // Others still get in.
        let b = slot(p.admit(B, 1));
        keep_alive(&mut p, b, 1);
        // A's idle connection is recycled for A; B's is left alone.
        keep_alive(&mut p, a1, 2);
        let Admit::EvictIdle { slot, then } = p.admit(A, 3) else { panic!("recycle") };
        assert_eq!(slot, a1.index());
        assert_eq!(p.held_by(A), 2);
        p.set(then, State::Reading, 3);
        assert!(matches!(p.admit(A, 4), Admit::Refuse { .. }));
        assert_eq!(p.slot(b.index()), Slot::Idle(1));
    }

    #[test]
    fn a_new_connection_is_not_closed_for_another_within_its_grace() {
        let mut p = Pool::<2>::new().with_per_peer(2).with_grace(100);
        assert_eq!(p.grace(), 100);
        let a0 = slot(p.admit(A, 0));
        let a1 = slot(p.admit(A, 0));
        // Both accepted, neither has sent a byte yet.
        p.set(a0, State::Idle, 0);
        p.set(a1, State::Idle, 10);
        assert_eq!(p.slot(a0.index()), Slot::Fresh(0));
        // Same peer at its cap, other peer on a full pool: nobody is closed within the grace.
        assert!(matches!(p.admit(A, 50), Admit::Refuse { .. }));
        assert!(matches!(p.admit(B, 99), Admit::Refuse { .. }));
        // a0's grace is over: it may go, a1's is not.
        let Admit::EvictIdle { slot, then } = p.admit(B, 100) else { panic!("evict a0") };
        assert_eq!(slot, a0.index());
        p.set(then, State::Reading, 100);
        // Once it has asked something, a connection idle between requests is a keep-alive one at
        // once, and goes before a fresh one past its grace.
        let b = then;
        keep_alive(&mut p, b, 120);
        assert_eq!(p.slot(b.index()), Slot::Idle(120));
        let Admit::EvictIdle { slot, .. } = p.admit(C, 500) else { panic!("evict b") };
        assert_eq!(slot, b.index());
    }

    #[test]
    fn a_fresh_connection_goes_after_idle_and_draining_ones() {
        let mut p = Pool::<3>::new().with_grace(0);
        let fresh = slot(p.admit(A, 0));
        let draining = slot(p.admit(B, 0));
        let idle = slot(p.admit(C, 0));
        p.set(fresh, State::Idle, 0);
        p.set(draining, State::Writing, 1);
        p.set(draining, State::Draining, 1);
        keep_alive(&mut p, idle, 2);
        let mut order = Vec::new();
        for now in 10..13 {
            let Admit::EvictIdle { slot, then } = p.admit(IpAddr::V4(Ipv4Addr::new(10, 0, 0, now as u8)), now) else {
                panic!("evict")
            };
            p.set(then, State::Reading, now);
            order.push(slot);
        }
        assert_eq!(order, [idle.index(), draining.index(), fresh.index()]);
    }

    #[test]
    fn ipv6_peers_are_grouped_by_64() {
        let mut p = Pool::<4>::new().with_per_peer(1);
        let x = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 1));
        let y = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0xffff, 0, 0, 9));
        let t = slot(p.admit(x, 0));
        p.set(t, State::Reading, 0);
        assert!(matches!(p.admit(y, 0), Admit::Refuse { .. }));
    }

    #[test]
    fn limits_are_clamped() {
        let p = Pool::<4>::new().with_limit(9).with_per_peer(0);
        assert_eq!((p.limit(), p.per_peer()), (4, 1));
        let mut p = Pool::<4>::new().with_limit(1);
        assert_eq!(p.per_peer(), 4);
        let t = slot(p.admit(A, 0));
        p.set(t, State::Writing, 0);
        assert!(matches!(p.admit(B, 0), Admit::Refuse { .. }));
        assert_eq!(Pool::<64>::new().per_peer(), HOST_PER_PEER);
    }
}
