//! The board's "flash": a file on the host, read and written through semihosting, with NOR semantics
//! (erase sets 4 KiB blocks to `0xFF`, a write can only clear bits), so the state goes through the
//! same record store (`oauth2_devices::storage::RecordStore`, `crate::persist`) as on the STM32 board.
//! Each write reaches the host file before the call returns, so killing QEMU at any point is a power
//! cut, and restarting it on the same file is a reboot. The async traits (what the store takes) run
//! the blocking calls: a semihosting call stops the emulated CPU anyway.

use core::ffi::CStr;

use embedded_storage::nor_flash::{
    check_erase, check_read, check_write, ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};
use semihosting::fs::File;
use semihosting::io::{Read as _, Seek as _, SeekFrom, Write as _};

/// Bytes moved per host call when erasing or merging a write.
const CHUNK: usize = 64;

/// Why a flash operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostFlashError {
    /// Outside the flash, or not on erase-block boundaries.
    Range(NorFlashErrorKind),
    /// The host refused the file operation.
    Io,
}

impl core::fmt::Display for HostFlashError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Range(kind) => write!(f, "flash range: {kind}"),
            Self::Io => f.write_str("host file operation failed"),
        }
    }
}

impl core::error::Error for HostFlashError {}

impl NorFlashError for HostFlashError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            Self::Range(kind) => *kind,
            Self::Io => NorFlashErrorKind::Other,
        }
    }
}

/// `capacity` bytes of NOR flash kept in a host file.
pub struct HostFlash {
    file: File,
    capacity: usize,
}

fn io<T>(r: semihosting::io::Result<T>) -> Result<T, HostFlashError> {
    r.map_err(|_| HostFlashError::Io)
}

impl HostFlash {
    /// Opens the file, or creates it erased; a shorter file is extended with erased bytes.
    pub fn open(path: &CStr, capacity: usize) -> Result<Self, HostFlashError> {
        let file = match File::options().read(true).write(true).open(path) {
            Ok(file) => file,
            Err(_) => io(File::options().read(true).write(true).create(true).truncate(true).open(path))?,
        };
        let mut flash = Self { file, capacity };
        let len = (io(flash.file.metadata())?.len() as usize).min(capacity);
        flash.fill(len, capacity)?;
        Ok(flash)
    }

    /// Writes erased bytes over `from..to`.
    fn fill(&mut self, from: usize, to: usize) -> Result<(), HostFlashError> {
        io(self.file.seek(SeekFrom::Start(from as u64)))?;
        let erased = [0xFFu8; CHUNK];
        let mut at = from;
        while at < to {
            let n = (to - at).min(CHUNK);
            io(self.file.write_all(&erased[..n]))?;
            at += n;
        }
        Ok(())
    }
}

impl ErrorType for HostFlash {
    type Error = HostFlashError;
}

impl ReadNorFlash for HostFlash {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        check_read(self, offset, bytes.len()).map_err(HostFlashError::Range)?;
        io(self.file.seek(SeekFrom::Start(u64::from(offset))))?;
        io(self.file.read_exact(bytes))
    }

    fn capacity(&self) -> usize {
        self.capacity
    }
}

impl NorFlash for HostFlash {
    const WRITE_SIZE: usize = 1;
    const ERASE_SIZE: usize = 4096;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        check_erase(self, from, to).map_err(HostFlashError::Range)?;
        self.fill(from as usize, to as usize)
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        check_write(self, offset, bytes.len()).map_err(HostFlashError::Range)?;
        // NOR: programming clears bits only, so each byte becomes old AND new.
        let mut at = offset;
        for chunk in bytes.chunks(CHUNK) {
            let mut merged = [0u8; CHUNK];
            let merged = &mut merged[..chunk.len()];
            self.read(at, merged)?;
            for (m, b) in merged.iter_mut().zip(chunk) {
                *m &= *b;
            }
            io(self.file.seek(SeekFrom::Start(u64::from(at))))?;
            io(self.file.write_all(merged))?;
            at += chunk.len() as u32;
        }
        Ok(())
    }
}

impl embedded_storage_async::nor_flash::ReadNorFlash for HostFlash {
    const READ_SIZE: usize = <Self as ReadNorFlash>::READ_SIZE;

    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        ReadNorFlash::read(self, offset, bytes)
    }

    fn capacity(&self) -> usize {
        self.capacity
    }
}

impl embedded_storage_async::nor_flash::NorFlash for HostFlash {
    const WRITE_SIZE: usize = <Self as NorFlash>::WRITE_SIZE;
    const ERASE_SIZE: usize = <Self as NorFlash>::ERASE_SIZE;

    async fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        NorFlash::erase(self, from, to)
    }

    async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        NorFlash::write(self, offset, bytes)
    }
}
