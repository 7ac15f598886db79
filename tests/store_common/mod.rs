//! Shared by the record-store tests: a RAM NOR flash that can lose power after a number of byte
//! operations and counts erases per page, a model of the state, and short-hands.
#![allow(dead_code)]

use std::collections::BTreeMap;

use embedded_storage::nor_flash as blocking;
use embedded_storage_async::nor_flash as asynch;
use oauth2_devices::key::{KeyRing, ServerKey};
use oauth2_devices::storage::{Found, LoadReport, Record, RecordStore, StoreConfig, StoreError};

pub use embassy_futures::block_on;

/// NOR flash in RAM with `W`-byte writes and `E`-byte pages. Bytes only go from 1 to 0: a write that would
/// need a 0 to become 1 again panics (it would be a store writing over live data). Rewriting bits that are
/// already 0 is tolerated: sequential-storage rewrites a page marker whose first write was cut. With a `budget`, power is
/// lost after that many bytes written or erased: the byte operation that would exceed it does not happen,
/// nor does any after it, and every later write or erase fails.
#[derive(Clone, Debug)]
pub struct FakeFlash<const W: usize, const E: usize> {
    pub mem: Vec<u8>,
    pub budget: Option<usize>,
    /// Byte operations done (writes and erases).
    pub ops: usize,
    /// Bytes written.
    pub written: usize,
    /// Completed erases of each page.
    pub erases: Vec<u64>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct PowerCut;

impl blocking::NorFlashError for PowerCut {
    fn kind(&self) -> blocking::NorFlashErrorKind {
        blocking::NorFlashErrorKind::Other
    }
}

impl<const W: usize, const E: usize> FakeFlash<W, E> {
    pub fn new(len: usize) -> Self {
        assert_eq!(len % E, 0);
        Self { mem: vec![0xFF; len], budget: None, ops: 0, written: 0, erases: vec![0; len / E] }
    }

    /// A copy that loses power after `cut` more byte operations.
    pub fn cut_after(&self, cut: usize) -> Self {
        let mut f = self.clone();
        f.budget = Some(cut);
        f
    }

    /// A copy with the power back.
    pub fn powered(&self) -> Self {
        let mut f = self.clone();
        f.budget = None;
        f
    }

    fn spend(&mut self) -> Result<(), PowerCut> {
        match &mut self.budget {
            Some(0) => return Err(PowerCut),
            Some(n) => *n -= 1,
            None => {}
        }
        self.ops += 1;
        Ok(())
    }

    fn do_erase(&mut self, from: u32, to: u32) -> Result<(), PowerCut> {
        assert_eq!(from as usize % E, 0, "erase start");
        assert_eq!(to as usize % E, 0, "erase end");
        for i in from..to {
            self.spend()?;
            self.mem[i as usize] = 0xFF;
        }
        for page in from as usize / E..to as usize / E {
            self.erases[page] += 1;
        }
        Ok(())
    }

    fn do_write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), PowerCut> {
        assert_eq!(offset as usize % W, 0, "write offset");
        assert_eq!(bytes.len() % W, 0, "write length");
        for (i, b) in bytes.iter().enumerate() {
            let at = offset as usize + i;
            assert_eq!(self.mem[at] & b, *b, "byte {at} written over data");
            self.spend()?;
            self.written += 1;
            self.mem[at] &= b;
        }
        Ok(())
    }

    /// Flips one bit.
    pub fn flip(&mut self, at: usize, bit: u8) {
        self.mem[at] ^= 1 << bit;
    }

    /// Where `needle` is in the flash (the first place).
    pub fn find(&self, needle: &[u8]) -> Option<usize> {
        self.mem.windows(needle.len()).position(|w| w == needle)
    }
}

impl<const W: usize, const E: usize> blocking::ErrorType for FakeFlash<W, E> {
    type Error = PowerCut;
}

impl<const W: usize, const E: usize> blocking::ReadNorFlash for FakeFlash<W, E> {
    const READ_SIZE: usize = 1;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), PowerCut> {
        let o = offset as usize;
        bytes.copy_from_slice(&self.mem[o..o + bytes.len()]);
        Ok(())
    }
    fn capacity(&self) -> usize {
        self.mem.len()
    }
}

impl<const W: usize, const E: usize> blocking::NorFlash for FakeFlash<W, E> {
    const WRITE_SIZE: usize = W;
    const ERASE_SIZE: usize = E;
    fn erase(&mut self, from: u32, to: u32) -> Result<(), PowerCut> {
        self.do_erase(from, to)
    }
    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), PowerCut> {
        self.do_write(offset, bytes)
    }
}

impl<const W: usize, const E: usize> asynch::ReadNorFlash for FakeFlash<W, E> {
    const READ_SIZE: usize = 1;
    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), PowerCut> {
        blocking::ReadNorFlash::read(self, offset, bytes)
    }
    fn capacity(&self) -> usize {
        self.mem.len()
    }
}

impl<const W: usize, const E: usize> asynch::NorFlash for FakeFlash<W, E> {
    const WRITE_SIZE: usize = W;
    const ERASE_SIZE: usize = E;
    async fn erase(&mut self, from: u32, to: u32) -> Result<(), PowerCut> {
        self.do_erase(from, to)
    }
    async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), PowerCut> {
        self.do_write(offset, bytes)
    }
}

/// The records of a state, as the provider would hold them.
pub type State = BTreeMap<u16, Vec<u8>>;

/// Applies a delivered or committed record.
pub fn apply(state: &mut State, r: Record<'_>) {
    match r.value {
        Some(v) => state.insert(r.key, v.to_vec()),
        None => state.remove(&r.key),
    };
}

pub fn keys() -> KeyRing {
    KeyRing::new(ServerKey::new(1, &[0x5a; 32]))
}

/// Loads and returns the report with the records, applied.
pub fn load<F: asynch::NorFlash, const FR: usize, const P: usize>(
    store: &mut RecordStore<F, FR, P>,
    keys: &KeyRing,
) -> Result<(LoadReport, State), StoreError> {
    let mut state = State::new();
    let report = block_on(store.load(keys, |r| apply(&mut state, r)))?;
    Ok((report, state))
}

/// Commits owned records.
pub fn commit<F: asynch::NorFlash, const FR: usize, const P: usize>(
    store: &mut RecordStore<F, FR, P>,
    keys: &KeyRing,
    records: &[(u16, Option<Vec<u8>>)],
) -> Result<bool, StoreError> {
    let rs: Vec<Record<'_>> = records.iter().map(|(k, v)| Record { key: *k, value: v.as_deref() }).collect();
    block_on(store.commit(keys, &rs)).map(|c| c.checkpoint_due)
}

/// Writes `state` as a checkpoint.
pub fn checkpoint<F: asynch::NorFlash, const FR: usize, const P: usize>(
    store: &mut RecordStore<F, FR, P>,
    keys: &KeyRing,
    state: &State,
) -> Result<(), StoreError> {
    block_on(async {
        let mut cp = store.checkpoint(keys)?;
        for (k, v) in state {
            cp.put(*k, v).await?;
        }
        cp.finish().await
    })
}

/// A value that differs per key and generation.
pub fn value(key: u16, generation: u32, len: usize) -> Vec<u8> {
    (0..len).map(|i| (key as u32 * 31 + generation * 7 + i as u32) as u8).collect()
}

/// The flash of the small test layout: 4-byte words, 8 pages of 512 bytes.
pub type Small = FakeFlash<4, 512>;
pub const SMALL_LEN: usize = 8 * 512;
pub type SmallStore = RecordStore<Small, 128, 8>;
pub const SMALL_CONFIG: StoreConfig = StoreConfig::new(6, 20);

pub fn small_store(flash: Small) -> SmallStore {
    RecordStore::new(flash, 0, SMALL_LEN as u32, SMALL_CONFIG).expect("layout")
}

pub fn is_trusted(found: Found) -> bool {
    found.is_trusted()
}

/// The items of the queue as sequential-storage returns them (on a copy: iterating may erase pages).
pub fn raw_items<const W: usize, const E: usize>(flash: &FakeFlash<W, E>) -> Vec<Vec<u8>> {
    use sequential_storage::cache::NoCache;
    use sequential_storage::queue::{QueueConfig, QueueStorage};
    let len = flash.mem.len() as u32;
    let mut q = QueueStorage::new(flash.powered(), QueueConfig::new(0..len), NoCache::new());
    let mut buf = vec![0u8; E];
    let mut out = Vec::new();
    block_on(async {
        let mut it = q.iter().await.unwrap();
        while let Some(entry) = it.next(&mut buf).await.unwrap() {
            out.push(entry.to_vec());
        }
    });
    out
}

/// A fresh flash holding exactly `items`, pushed in order through sequential-storage (so their CRCs are
/// valid whatever their content).
pub fn rebuilt<const W: usize, const E: usize>(len: usize, items: &[Vec<u8>]) -> FakeFlash<W, E> {
    use sequential_storage::cache::NoCache;
    use sequential_storage::queue::{QueueConfig, QueueStorage};
    let mut q = QueueStorage::new(FakeFlash::<W, E>::new(len), QueueConfig::new(0..len as u32), NoCache::new());
    block_on(async {
        for item in items {
            q.push(item, false).await.unwrap();
        }
    });
    q.destroy().0
}

/// The sequence number and kind byte of a frame (header offsets 4 and 1).
pub fn frame_seq(item: &[u8]) -> u32 {
    u32::from_le_bytes(item[4..8].try_into().unwrap())
}
pub fn frame_kind(item: &[u8]) -> u8 {
    item[1]
}
pub const KIND_COMMIT: u8 = 1;
pub const KIND_MARK: u8 = 3;

/// Gives a frame another sequence number the way a forger without the key would: header changed, body
/// re-whitened for the new number (see the frame format), tag left as it was.
pub fn renumber(item: &mut [u8], seq: u32) {
    use sha2::{Digest, Sha256};
    let pad = |s: u32| Sha256::new().chain_update(b"oauth2-devices store pad").chain_update(s.to_le_bytes()).finalize();
    let (old, new) = (pad(frame_seq(item)), pad(seq));
    let end = item.len() - 16;
    for (i, b) in item[12..end].iter_mut().enumerate() {
        *b ^= old[i % 32] ^ new[i % 32];
    }
    item[4..8].copy_from_slice(&seq.to_le_bytes());
}
