//! A NOR flash kept in a file, for hosts (feature `std`).

extern crate std;

use embedded_storage::nor_flash::{ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash};
use embedded_storage_async::nor_flash as asynch;
use std::io::{Read, Seek, SeekFrom, Write};

/// A NOR flash kept in a file, for hosts: erase sets bytes to `0xFF`, writes can only clear bits, as on
/// real NOR flash. Pages of 4 KiB, byte writes; every write and erase is synced to the disk before it
/// returns. It implements the blocking `embedded-storage` traits (for [`super::SnapshotSlots`]) and the
/// async `embedded-storage-async` ones (for [`super::RecordStore`]); the async ones never wait.
#[derive(Debug)]
pub struct FileFlash {
    file: std::fs::File,
    capacity: usize,
}

/// An I/O error of the file behind a [`FileFlash`], or an access outside it.
#[derive(Debug)]
pub struct FileFlashError(pub std::io::ErrorKind);

impl NorFlashError for FileFlashError {
    fn kind(&self) -> NorFlashErrorKind {
        if self.0 == std::io::ErrorKind::InvalidInput {
            NorFlashErrorKind::OutOfBounds
        } else {
            NorFlashErrorKind::Other
        }
    }
}

impl FileFlash {
    /// Opens (or creates, erased) a flash file of `capacity` bytes.
    pub fn open(path: impl AsRef<std::path::Path>, capacity: usize) -> std::io::Result<Self> {
        let mut file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        let len = file.metadata()?.len() as usize;
        if len < capacity {
            file.seek(SeekFrom::Start(len as u64))?;
            file.write_all(&std::vec![0xFF; capacity - len])?;
            file.sync_all()?;
        }
        Ok(Self { file, capacity })
    }

    fn check(&self, offset: u32, len: usize) -> Result<(), FileFlashError> {
        match (offset as usize).checked_add(len) {
            Some(end) if end <= self.capacity => Ok(()),
            _ => Err(FileFlashError(std::io::ErrorKind::InvalidInput)),
        }
    }
}

fn io(e: std::io::Error) -> FileFlashError {
    FileFlashError(e.kind())
}

impl ErrorType for FileFlash {
    type Error = FileFlashError;
}

impl ReadNorFlash for FileFlash {
    const READ_SIZE: usize = 1;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        self.check(offset, bytes.len())?;
        self.file.seek(SeekFrom::Start(u64::from(offset))).map_err(io)?;
        self.file.read_exact(bytes).map_err(io)
    }
    fn capacity(&self) -> usize {
        self.capacity
    }
}

impl NorFlash for FileFlash {
    const WRITE_SIZE: usize = 1;
    const ERASE_SIZE: usize = 4096;
    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        let len = to.checked_sub(from).ok_or(FileFlashError(std::io::ErrorKind::InvalidInput))? as usize;
        self.check(from, len)?;
        self.file.seek(SeekFrom::Start(u64::from(from))).map_err(io)?;
        self.file.write_all(&std::vec![0xFF; len]).map_err(io)?;
        self.file.sync_data().map_err(io)
    }
    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        let mut old = std::vec![0u8; bytes.len()];
        ReadNorFlash::read(self, offset, &mut old)?;
        let new: std::vec::Vec<u8> = old.iter().zip(bytes).map(|(o, n)| o & n).collect();
        self.file.seek(SeekFrom::Start(u64::from(offset))).map_err(io)?;
        self.file.write_all(&new).map_err(io)?;
        self.file.sync_data().map_err(io)
    }
}

impl asynch::ReadNorFlash for FileFlash {
    const READ_SIZE: usize = <Self as ReadNorFlash>::READ_SIZE;
    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        ReadNorFlash::read(self, offset, bytes)
    }
    fn capacity(&self) -> usize {
        self.capacity
    }
}

impl asynch::NorFlash for FileFlash {
    const WRITE_SIZE: usize = <Self as NorFlash>::WRITE_SIZE;
    const ERASE_SIZE: usize = <Self as NorFlash>::ERASE_SIZE;
    async fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        NorFlash::erase(self, from, to)
    }
    async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        NorFlash::write(self, offset, bytes)
    }
}
