//! The board's "flash": the last MiB of the machine's RAM, which is no part of the image and
//! which a reset leaves as it was (QEMU restores the image's sections on reset, not the rest
//! of RAM), with NOR semantics — writes only clear bits, erase sets a page to 0xFF. At power-on
//! it holds zeros: foreign data, which the store erases once.

use embedded_storage_async::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

/// Where it starts: 3 MiB into RAM, past the end of `memory.x`'s RAM region.
const BASE: usize = 0x2030_0000;
/// Its size: 64 KiB, as the RP2040 boards' store.
pub const SIZE: usize = 64 * 1024;
const PAGE: usize = 4096;

/// An offset or length outside the flash, or one not aligned to what the operation needs.
#[derive(Debug)]
pub enum FlashError {
    OutOfBounds,
    NotAligned,
}

impl NorFlashError for FlashError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            FlashError::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            FlashError::NotAligned => NorFlashErrorKind::NotAligned,
        }
    }
}

/// The RAM region as a NOR flash.
pub struct RamFlash(&'static mut [u8]);

impl RamFlash {
    /// The region; call once.
    pub fn take() -> Self {
        // SAFETY: BASE..BASE+SIZE is RAM of the machine (mps2-an385's SSRAM2/3) outside every
        // section the linker places (memory.x ends the program's RAM below it) and outside the
        // stack, so nothing else refers to it; this runs once, at boot, before any other use.
        Self(unsafe { core::slice::from_raw_parts_mut(BASE as *mut u8, SIZE) })
    }

    fn range(&mut self, offset: u32, len: usize, align: usize) -> Result<&mut [u8], FlashError> {
        let start = offset as usize;
        if !start.is_multiple_of(align) || !len.is_multiple_of(align) {
            return Err(FlashError::NotAligned);
        }
        let end = start.checked_add(len).ok_or(FlashError::OutOfBounds)?;
        self.0.get_mut(start..end).ok_or(FlashError::OutOfBounds)
    }
}

impl ErrorType for RamFlash {
    type Error = FlashError;
}

impl ReadNorFlash for RamFlash {
    const READ_SIZE: usize = 1;
    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), FlashError> {
        bytes.copy_from_slice(self.range(offset, bytes.len(), 1)?);
        Ok(())
    }
    fn capacity(&self) -> usize {
        SIZE
    }
}

impl NorFlash for RamFlash {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = PAGE;
    async fn erase(&mut self, from: u32, to: u32) -> Result<(), FlashError> {
        let len = (to as usize)
            .checked_sub(from as usize)
            .ok_or(FlashError::OutOfBounds)?;
        self.range(from, len, PAGE)?.fill(0xff);
        Ok(())
    }
    async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), FlashError> {
        for (cell, b) in self.range(offset, bytes.len(), 4)?.iter_mut().zip(bytes) {
            *cell &= *b;
        }
        Ok(())
    }
}
