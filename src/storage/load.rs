//! Loading: find the newest state the log proves, tell a cut write from damage, and hand the records over.

use embedded_storage_async::nor_flash::NorFlash;

use super::error::StoreError;
use super::frame::{self, Frame, Kind, Reject};
use super::record::{Entries, Record};
use super::store::{Bound, Mode, RecordStore};
use crate::fmt::{log_debug, log_warn};
use crate::key::KeyRing;

/// What a load found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Found {
    /// The range is erased: a new device. No records.
    Empty,
    /// The newest state, complete, authenticated, and confirmed by its commit mark.
    Restored,
    /// The newest state that was completely written: the last write was cut by a power loss, and what it
    /// left was dropped (an unfinished checkpoint, or traces of a first write) or is kept unconfirmed (a
    /// complete commit whose mark is missing). This is the expected result after a power cut.
    TornTail,
    /// Damage: an authenticated frame is missing or fails its check after the newest checkpoint, or its
    /// commit mark proves the newest commit was written whole and that commit no longer verifies. The
    /// records delivered are the newest state *before* the damage: older than what was acknowledged, so
    /// they may only serve what must never go back (the serial counter; the clock as a lower bound).
    Corrupted,
    /// The range holds data but no state can be proven from it (every item damaged, another server's key,
    /// or the start of the log lost). No records.
    NothingRestorable,
}

impl Found {
    /// Whether the records delivered are the newest state (nothing acknowledged was lost).
    pub const fn is_trusted(self) -> bool {
        matches!(self, Self::Empty | Self::Restored | Self::TornTail)
    }
}

/// What a load found, and counts for the operator's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct LoadReport {
    /// The verdict.
    pub found: Found,
    /// Records handed to the sink (puts and removals, counted one each).
    pub records: u32,
    /// Authentic frames read.
    pub frames: u32,
    /// Items sequential-storage returned that are not authentic frames (bad tag, unknown key, malformed).
    pub rejected: u32,
    /// Places where the sequence numbers jump, in the whole log (also in old parts that no longer matter).
    pub breaks: u32,
}

/// The log's base: where the records of the state start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Base {
    /// Index of the first frame of the checkpoint, or of the first frame of the log (sequence 0).
    first: u32,
    /// Index of the last frame of the checkpoint; `None` for the start of the log (an empty state).
    last: Option<u32>,
    /// Flash bytes of the checkpoint's frames.
    written: u32,
    bound: Bound,
}

/// The newest frame of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tail {
    index: u32,
    seq: u32,
    kind: Kind,
    span: u32,
    item: u32,
}

/// A checkpoint whose last part has not been seen yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Open {
    first: u32,
    entries: u32,
    bytes: u32,
    written: u32,
}

/// Consecutive authentic frames (sequence numbers without a gap).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    base: Option<Base>,
    open: Option<Open>,
    /// Bound of the next checkpoint: the base's records plus every put since.
    bound: Bound,
    tail: Tail,
}

/// A state the log proves: the frames from `base.first` to `end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    base: Base,
    end: Tail,
    bound: Bound,
    /// The run goes on to the end of the log (the newest state) and its last write was not cut.
    newest: bool,
    clean: bool,
}

/// What pass one needs of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Summary {
    kind: Kind,
    seq: u32,
    span: u32,
    count: Option<u32>,
    entries: u32,
    /// Entries that put a value, and their bytes.
    puts: u32,
    put_bytes: u32,
}

impl Summary {
    /// Checks a frame's body; checkpoints hold puts only.
    fn of(frame: &Frame<'_>) -> Result<Self, Reject> {
        let (mut entries, mut puts, mut put_bytes) = (0u32, 0u32, 0u32);
        for e in Entries::new(frame.entries) {
            let r = e.map_err(|_| Reject::Malformed)?;
            entries = entries.saturating_add(1);
            match (frame.kind, r.value) {
                (Kind::Checkpoint { .. }, None) => return Err(Reject::Malformed),
                (_, Some(_)) => {
                    puts = puts.saturating_add(1);
                    put_bytes = put_bytes.saturating_add(r.entry_len() as u32);
                }
                _ => {}
            }
        }
        Ok(Self { kind: frame.kind, seq: frame.seq, span: frame.span, count: frame.count, entries, puts, put_bytes })
    }
}

/// Pass one: reads the frames in log order and finds the window of the newest provable state.
#[derive(Debug, Default)]
pub(crate) struct Scanner {
    run: Option<Run>,
    /// The newest state proven by a run that was later broken.
    prefix: Option<Window>,
    max_seq: Option<u32>,
    frames: u32,
    rejected: u32,
    breaks: u32,
}

impl Run {
    fn window(&self, newest: bool) -> Option<Window> {
        let clean = self.open.is_none() && self.tail.kind == Kind::Mark;
        self.base.map(|base| Window { base, end: self.tail, bound: self.bound, newest, clean })
    }
}

impl Scanner {
    fn close(&mut self) {
        if let Some(run) = self.run.take() {
            self.breaks = self.breaks.saturating_add(1);
            if let Some(w) = run.window(false) {
                self.prefix = Some(w);
            }
        }
    }

    /// One item of the log: its index, its flash bytes, and what it is.
    pub(crate) fn feed(&mut self, index: u32, item: u32, frame: Result<Summary, Reject>) {
        let continues = |run: &Option<Run>, seq: u32| run.is_some_and(|r| r.tail.seq.checked_add(1) == Some(seq));
        // The last part of a checkpoint must carry the number of records its parts hold: authentic but
        // inconsistent is not something this crate writes, so it counts as rejected.
        let consistent = |s: &Summary| match s.kind {
            Kind::Checkpoint { first, last: true } => {
                let open = if first {
                    Some(0)
                } else {
                    self.run.filter(|_| continues(&self.run, s.seq)).and_then(|r| r.open).map(|o| o.entries)
                };
                open.is_none_or(|n| s.count == Some(n.saturating_add(s.entries)))
            }
            _ => true,
        };
        let s = match frame {
            Ok(s) if consistent(&s) => s,
            _ => {
                self.rejected = self.rejected.saturating_add(1);
                self.close();
                return;
            }
        };
        self.frames = self.frames.saturating_add(1);
        self.max_seq = Some(self.max_seq.map_or(s.seq, |m| m.max(s.seq)));
        let tail = Tail { index, seq: s.seq, kind: s.kind, span: s.span, item };
        let continues = continues(&self.run, s.seq);
        if !continues {
            self.close();
            // The first frame ever written (sequence 0) starts from the empty state.
            let genesis = (s.seq == 0 && s.kind != Kind::Damage).then_some(Base {
                first: index,
                last: None,
                written: 0,
                bound: Bound::default(),
            });
            self.run = Some(Run { base: genesis, open: None, bound: Bound::default(), tail });
        }
        let Some(mut run) = self.run else { return };
        match s.kind {
            Kind::Checkpoint { first, last } => {
                if first {
                    run.open = Some(Open { first: index, entries: 0, bytes: 0, written: 0 });
                }
                if let Some(o) = run.open.as_mut() {
                    o.entries = o.entries.saturating_add(s.entries);
                    o.bytes = o.bytes.saturating_add(s.put_bytes);
                    o.written = o.written.saturating_add(item);
                }
                if last {
                    if let Some(o) = run.open.take() {
                        let bound = Bound { entries: o.entries, bytes: o.bytes };
                        run.base = Some(Base { first: o.first, last: Some(index), written: o.written, bound });
                        run.bound = bound;
                    }
                }
            }
            Kind::Commit => {
                run.open = None;
                run.bound = run.bound.add(s.puts, s.put_bytes);
            }
            Kind::Mark => run.open = None,
            Kind::Damage => {
                run.open = None;
                if let Some(w) = run.window(false) {
                    self.prefix = Some(w);
                }
                run.base = None;
            }
        }
        run.tail = tail;
        self.run = Some(run);
    }

    /// The window to restore, if any, and the counts.
    pub(crate) fn finish(&self) -> Option<Window> {
        match self.run.and_then(|r| r.window(true)) {
            Some(w) => Some(w),
            None => self.prefix,
        }
    }
}

impl Window {
    /// Flash bytes from the base to the end of the log, by the writer's accounting.
    fn live(&self) -> u32 {
        if self.base.last == Some(self.end.index) {
            // The checkpoint is the newest thing written: its mark was cut.
            self.base.written
        } else {
            self.end.span.saturating_add(self.end.item)
        }
    }
}

impl<F: NorFlash, const FRAME: usize, const PAGES: usize> RecordStore<F, FRAME, PAGES> {
    /// Reads the log, finds the newest state it proves and hands its records to `sink` in log order: the
    /// base checkpoint's records, then the changes of every commit since. A key can come more than once;
    /// the later one replaces the earlier, and `value: None` removes it. Check [`LoadReport::found`]
    /// before trusting them (see [`Found`]).
    ///
    /// The flash is read twice (once to judge, once to deliver), so the sink sees nothing of a log that
    /// turns out damaged further on. After damage the store accepts only a checkpoint until one completes
    /// (and when no item at all was readable it appends a damage mark first, see the module docs). Frames
    /// of a key that is not in the ring are reported as [`Found::NothingRestorable`] and left alone; a
    /// checkpoint written then makes them unreachable. Call again after any [`StoreError`] from a write.
    pub async fn load(&mut self, keys: &KeyRing, mut sink: impl FnMut(Record<'_>)) -> Result<LoadReport, StoreError> {
        self.mode = Mode::Unloaded;
        // Measured before iterating: sequential-storage erases leading pages in which it finds no valid
        // item while it iterates, which would make a fully damaged log look almost empty.
        let free = self.queue.space_left().await?;
        let used = self.geo.capacity.saturating_sub(free);

        let mut scan = Scanner::default();
        {
            let Self { queue, buf, .. } = self;
            let mut items = queue.iter().await?;
            let mut index = 0u32;
            loop {
                let entry = match items.next(buf).await {
                    Ok(Some(entry)) => entry,
                    Ok(None) => break,
                    Err(sequential_storage::Error::Storage { .. }) => return Err(StoreError::Flash),
                    // sequential-storage cannot read further (page states it cannot repair, or an item
                    // header that claims more than a frame): judge what was read, as damage at the end.
                    Err(_) => {
                        scan.feed(index, 0, Err(Reject::Malformed));
                        break;
                    }
                };
                let data = entry.into_buf();
                let item = self.geo.item(data.len());
                let summary = frame::open(keys, data).and_then(|f| Summary::of(&f));
                scan.feed(index, item, summary);
                index = index.saturating_add(1);
            }
        }
        let window = scan.finish();
        let mut report = LoadReport {
            found: Found::Empty,
            records: 0,
            frames: scan.frames,
            rejected: scan.rejected,
            breaks: scan.breaks,
        };
        self.next_seq = scan.max_seq.map_or(0, |s| s.saturating_add(1));
        self.live = 0;
        self.bound = Bound::default();

        report.found = match window {
            Some(w) if w.newest && w.clean => Found::Restored,
            Some(w) if w.newest => Found::TornTail,
            Some(_) => Found::Corrupted,
            None if scan.frames == 0 && scan.rejected == 0 && used == 0 => Found::Empty,
            // Only what one interrupted first write can leave behind.
            None if scan.frames == 0 && scan.rejected == 0 && used <= self.geo.max_item => Found::TornTail,
            None => Found::NothingRestorable,
        };
        if let Some(w) = window {
            report.records = self.deliver(keys, &w, &mut sink).await?;
        }
        match (report.found, window) {
            (Found::Restored | Found::TornTail, Some(w)) => {
                // One write may have been cut after the newest frame, invisibly: count it as a full frame.
                self.live = w.live().saturating_add(self.geo.max_item);
                self.bound = w.bound;
                self.mode = Mode::Ready;
            }
            (Found::Empty | Found::TornTail, None) => self.mode = Mode::Ready,
            _ => {
                log_warn!(
                    "record store damaged: {} authentic frames, {} rejected, {} breaks",
                    report.frames,
                    report.rejected,
                    report.breaks
                );
                self.mode = Mode::Recovering;
                // A damaged log reads the same at every load (only a checkpoint is written until the
                // store recovers), except when no item at all passed sequential-storage's checks: its
                // iterator then erases the pages it found nothing valid in, and a later load could take
                // what is left for the traces of one cut write. Latch the damage with a mark.
                if scan.frames == 0 && scan.rejected == 0 {
                    self.append_mark(keys, Kind::Damage).await?;
                }
            }
        }
        if report.found == Found::TornTail {
            log_debug!("record store: the last write was cut by a power loss");
        }
        Ok(report)
    }

    /// Pass two: reads the window again, checks that it reads the same, and hands its records over.
    async fn deliver(
        &mut self,
        keys: &KeyRing,
        w: &Window,
        sink: &mut impl FnMut(Record<'_>),
    ) -> Result<u32, StoreError> {
        let Self { queue, buf, .. } = self;
        let mut items = queue.iter().await?;
        let (mut index, mut delivered, mut expect) = (0u32, 0u32, None::<u32>);
        while index <= w.end.index {
            let Some(entry) = items.next(buf).await.map_err(|_| StoreError::Unstable)? else {
                return Err(StoreError::Unstable);
            };
            if index >= w.base.first {
                let data = entry.into_buf();
                let f = frame::open(keys, data).map_err(|_| StoreError::Unstable)?;
                if expect.is_some_and(|e| e != f.seq) {
                    return Err(StoreError::Unstable);
                }
                expect = f.seq.checked_add(1);
                let in_base = w.base.last.is_some_and(|last| index <= last);
                let wanted = match f.kind {
                    Kind::Checkpoint { .. } => in_base,
                    Kind::Commit => !in_base,
                    Kind::Mark | Kind::Damage => false,
                };
                if wanted {
                    for e in Entries::new(f.entries) {
                        sink(e.map_err(|_| StoreError::Unstable)?);
                        delivered = delivered.saturating_add(1);
                    }
                }
            }
            index = index.saturating_add(1);
        }
        Ok(delivered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: Kind, seq: u32, span: u32, entries: u32, count: Option<u32>) -> Result<Summary, Reject> {
        Ok(Summary { kind, seq, span, count, entries, puts: entries, put_bytes: entries * 10 })
    }
    const CP1: Kind = Kind::Checkpoint { first: true, last: false };
    const CPN: Kind = Kind::Checkpoint { first: false, last: true };
    const CP: Kind = Kind::Checkpoint { first: true, last: true };

    fn scan(items: &[Result<Summary, Reject>]) -> (Option<Window>, Scanner) {
        let mut s = Scanner::default();
        for (i, it) in items.iter().enumerate() {
            s.feed(i as u32, 100, *it);
        }
        (s.finish(), s)
    }

    #[test]
    fn clean_log_from_genesis_and_from_a_checkpoint() {
        let (w, s) = scan(&[frame(Kind::Commit, 0, 0, 1, None), frame(Kind::Mark, 1, 100, 0, None)]);
        let w = w.unwrap();
        assert!(w.newest && w.clean);
        assert_eq!((w.base.first, w.base.last, w.end.index, w.live()), (0, None, 1, 200));
        assert_eq!((s.breaks, s.rejected, s.max_seq), (0, 0, Some(1)));

        // Old frames, then a two-part checkpoint, its mark and a commit with its mark.
        let (w, _) = scan(&[
            frame(Kind::Commit, 7, 0, 1, None),
            frame(CP1, 8, 0, 3, None),
            frame(CPN, 9, 0, 2, Some(5)),
            frame(Kind::Mark, 10, 200, 0, None),
            frame(Kind::Commit, 11, 300, 2, None),
            frame(Kind::Mark, 12, 400, 0, None),
        ]);
        let w = w.unwrap();
        assert!(w.newest && w.clean);
        assert_eq!((w.base.first, w.base.last, w.bound.entries, w.live()), (1, Some(2), 7, 500));
    }

    #[test]
    fn cut_tails_are_torn_not_damaged() {
        // A commit without its mark is kept, unconfirmed.
        let (w, _) = scan(&[
            frame(CP, 0, 0, 1, Some(1)),
            frame(Kind::Mark, 1, 100, 0, None),
            frame(Kind::Commit, 2, 200, 1, None),
        ]);
        let w = w.unwrap();
        assert!(w.newest && !w.clean);
        assert_eq!(w.end.index, 2);
        // An unfinished checkpoint is dropped: the base stays the previous one.
        let (w, _) =
            scan(&[frame(CP, 0, 0, 1, Some(1)), frame(Kind::Mark, 1, 100, 0, None), frame(CP1, 2, 200, 1, None)]);
        let w = w.unwrap();
        assert!(w.newest && !w.clean);
        assert_eq!(w.base.last, Some(0));
        // A finished checkpoint whose mark was cut is the base.
        let (w, _) =
            scan(&[frame(CP, 0, 0, 1, Some(1)), frame(Kind::Mark, 1, 100, 0, None), frame(CP, 2, 200, 4, Some(4))]);
        let w = w.unwrap();
        assert_eq!((w.base.first, w.base.last, w.live()), (2, Some(2), 100));
        // An abandoned checkpoint followed by commits is skipped over.
        let (w, _) = scan(&[
            frame(CP, 0, 0, 1, Some(1)),
            frame(Kind::Mark, 1, 100, 0, None),
            frame(CP1, 2, 200, 1, None),
            frame(Kind::Commit, 3, 400, 1, None),
            frame(Kind::Mark, 4, 500, 0, None),
        ]);
        let w = w.unwrap();
        assert!(w.newest && w.clean);
        assert_eq!((w.base.last, w.end.index), (Some(0), 4));
    }

    #[test]
    fn gaps_and_rejections_after_the_base_are_damage() {
        let base = [frame(CP, 5, 0, 1, Some(1)), frame(Kind::Mark, 6, 100, 0, None)];
        // A missing frame in the middle.
        let (w, s) =
            scan(&[base[0], base[1], frame(Kind::Commit, 8, 300, 1, None), frame(Kind::Mark, 9, 400, 0, None)]);
        let w = w.unwrap();
        assert!(!w.newest);
        assert_eq!((w.end.index, s.breaks), (1, 1));
        // The newest item fails its check.
        let (w, s) = scan(&[base[0], base[1], Err(Reject::BadTag)]);
        assert!(!w.unwrap().newest);
        assert_eq!(s.rejected, 1);
        // A wrong record count in a checkpoint.
        let (w, _) = scan(&[frame(CP, 0, 0, 2, Some(3))]);
        assert_eq!(w, None);
        // Nothing authentic.
        let (w, s) = scan(&[Err(Reject::UnknownKey), Err(Reject::UnknownKey)]);
        assert_eq!((w, s.frames, s.rejected), (None, 0, 2));
    }

    #[test]
    fn damage_before_the_base_does_not_matter_and_a_damage_mark_latches() {
        let (w, s) = scan(&[
            frame(Kind::Commit, 3, 0, 1, None),
            Err(Reject::BadTag),
            frame(CP, 5, 0, 1, Some(1)),
            frame(Kind::Mark, 6, 100, 0, None),
        ]);
        assert!(w.unwrap().newest);
        assert_eq!(s.breaks, 1);
        // A damage mark after the base: the state before it is only a prefix, until a new checkpoint.
        let (w, _) = scan(&[
            frame(CP, 0, 0, 1, Some(1)),
            frame(Kind::Mark, 1, 100, 0, None),
            frame(Kind::Damage, 2, 200, 0, None),
        ]);
        let w = w.unwrap();
        assert!(!w.newest);
        assert_eq!(w.end.index, 1);
        let (w, _) = scan(&[
            frame(CP, 0, 0, 1, Some(1)),
            frame(Kind::Damage, 1, 100, 0, None),
            frame(CP, 2, 0, 1, Some(1)),
            frame(Kind::Mark, 3, 100, 0, None),
        ]);
        assert!(w.unwrap().newest);
        // A damage mark as the first frame never counts as the start of the log.
        let (w, _) = scan(&[frame(Kind::Damage, 0, 0, 0, None), frame(Kind::Commit, 1, 0, 1, None)]);
        assert_eq!(w, None);
    }
}
