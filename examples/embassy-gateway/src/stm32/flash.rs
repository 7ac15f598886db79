//! The record store's flash on the Nucleo-F767ZI in dual-bank mode (option bit nDBANK cleared): bank 2's
//! three 128 KiB sectors 5 to 7 (sectors 17 to 19, offsets `0x12_0000..0x18_0000`), while the program
//! runs from bank 1, so the flash keeps fetching instructions during an erase or a write there
//! (read-while-write between banks).
//!
//! embassy-stm32's driver busy-waits for the end of an erase (a second or more for 128 KiB) without
//! yielding, which would hold the executor, hence every connection, that long. This `NorFlash` starts
//! the sector erase itself and sleeps on a timer between polls of the busy flag; writes go through the
//! driver in chunks of [`WRITE_CHUNK`] bytes with a yield between chunks. No call holds the executor
//! longer than one chunk's programming (BENCHMARKS.md, "Flash wear" has the arithmetic).

use embassy_stm32::flash::{Blocking, Error, Flash, FLASH_SIZE, WRITE_SIZE};
use embassy_stm32::pac;
use embassy_time::Timer;
use embedded_storage_async::nor_flash::{ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash};

/// A 128 KiB sector of bank 2.
const SECTOR: u32 = 128 * 1024;
/// Bank 2's start (offset from the start of flash) in the dual-bank layout.
const BANK2: u32 = 0x0010_0000;
/// Bank 2's first 128 KiB sector (its sector 5: after four of 16 KiB and one of 64 KiB).
const FIRST_LARGE: u32 = BANK2 + 0x0002_0000;
/// Its index in the bank.
const FIRST_LARGE_INDEX: u8 = 5;
/// Bytes programmed between two yields: 16 of the driver's 16-byte writes, 64 words of 32 bits. At the
/// data sheet's worst 100 µs per word (x32 parallelism), 256 bytes hold the executor 6.4 ms at most.
pub const WRITE_CHUNK: usize = 256;
/// The poll interval of a running erase.
const POLL_MS: u64 = 2;

/// Why a store flash operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreFlashError {
    /// Out of range, misaligned, or outside the store's sectors.
    Range(NorFlashErrorKind),
    /// The driver refused a read or a write.
    Driver(Error),
    /// The erase ended with an error flag set (write protection, sequence or programming error).
    Erase,
}

impl NorFlashError for StoreFlashError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            Self::Range(kind) => *kind,
            Self::Driver(_) | Self::Erase => NorFlashErrorKind::Other,
        }
    }
}

impl defmt::Format for StoreFlashError {
    fn format(&self, f: defmt::Formatter<'_>) {
        match self {
            Self::Range(kind) => defmt::write!(f, "flash range: {}", defmt::Debug2Format(kind)),
            Self::Driver(e) => defmt::write!(f, "flash driver: {}", e),
            Self::Erase => defmt::write!(f, "flash erase failed"),
        }
    }
}

/// `len` bytes at `offset`, aligned to `align`, inside the flash.
fn check(offset: u32, len: usize, align: usize) -> Result<(), StoreFlashError> {
    let misaligned = !(offset as usize).is_multiple_of(align) || !len.is_multiple_of(align);
    if misaligned {
        return Err(StoreFlashError::Range(NorFlashErrorKind::NotAligned));
    }
    match (offset as usize).checked_add(len) {
        Some(end) if end <= FLASH_SIZE => Ok(()),
        _ => Err(StoreFlashError::Range(NorFlashErrorKind::OutOfBounds)),
    }
}

impl core::fmt::Display for StoreFlashError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Range(kind) => write!(f, "flash range: {kind}"),
            Self::Driver(e) => write!(f, "flash driver: {e:?}"),
            Self::Erase => f.write_str("flash erase failed"),
        }
    }
}

/// The whole flash for the store: reads anywhere, erases only bank 2's 128 KiB sectors.
pub struct StoreFlash {
    flash: Flash<'static, Blocking>,
}

impl StoreFlash {
    /// Wraps the driver (embassy-stm32 built with `dual-bank`, which checks nDBANK at start).
    pub fn new(flash: Flash<'static, Blocking>) -> Self {
        Self { flash }
    }

    /// Erases bank 2's sector `index`, sleeping while the flash works.
    async fn erase_sector(&mut self, index: u8) -> Result<(), StoreFlashError> {
        let f = pac::FLASH;
        if f.cr().read().lock() {
            f.keyr().write_value(0x4567_0123);
            f.keyr().write_value(0xCDEF_89AB);
        }
        // Clear earlier error flags (write 1 to clear: writing back what was read).
        f.sr().modify(|_| {});
        f.cr().modify(|w| {
            w.set_ser(true);
            w.set_snb((1 << 4) | index);
            w.set_psize(pac::flash::vals::Psize::PSIZE32);
        });
        f.cr().modify(|w| w.set_strt(true));
        // Bounded by the data sheet's worst erase time, with a margin: 4 s for 128 KiB.
        let mut polls = 0u32;
        while f.sr().read().bsy() && polls < 4_000 / POLL_MS as u32 * 2 {
            Timer::after_millis(POLL_MS).await;
            polls += 1;
        }
        let sr = f.sr().read();
        f.cr().modify(|w| w.set_ser(false));
        f.sr().modify(|_| {});
        f.cr().modify(|w| w.set_lock(true));
        if sr.bsy() || sr.erserr() || sr.wrperr() || sr.pgperr() || sr.pgaerr() {
            return Err(StoreFlashError::Erase);
        }
        Ok(())
    }
}

impl ErrorType for StoreFlash {
    type Error = StoreFlashError;
}

impl ReadNorFlash for StoreFlash {
    const READ_SIZE: usize = 1;

    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        check(offset, bytes.len(), 1)?;
        self.flash.blocking_read(offset, bytes).map_err(StoreFlashError::Driver)
    }

    fn capacity(&self) -> usize {
        FLASH_SIZE
    }
}

impl NorFlash for StoreFlash {
    const WRITE_SIZE: usize = WRITE_SIZE;
    const ERASE_SIZE: usize = SECTOR as usize;

    async fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        check(from, to.saturating_sub(from) as usize, SECTOR as usize)?;
        if to < from || from < FIRST_LARGE || to > BANK2 + BANK2 {
            return Err(StoreFlashError::Range(NorFlashErrorKind::OutOfBounds));
        }
        let mut at = from;
        while at < to {
            let index = FIRST_LARGE_INDEX + ((at - FIRST_LARGE) / SECTOR) as u8;
            self.erase_sector(index).await?;
            at += SECTOR;
        }
        Ok(())
    }

    async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        check(offset, bytes.len(), WRITE_SIZE)?;
        if offset < BANK2 {
            return Err(StoreFlashError::Range(NorFlashErrorKind::OutOfBounds));
        }
        let mut at = offset;
        for chunk in bytes.chunks(WRITE_CHUNK) {
            self.flash.blocking_write(at, chunk).map_err(StoreFlashError::Driver)?;
            at += chunk.len() as u32;
            embassy_futures::yield_now().await;
        }
        Ok(())
    }
}
