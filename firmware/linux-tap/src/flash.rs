//! `FileFlash`: the board's NOR flash, emulated by a regular file.
//!
//! It models the flash chip only: `embedded-storage-async`'s `NorFlash` with NOR semantics
//! (a write can only clear bits, `new = old & data`; an erase sets a 4096-byte page to 0xFF),
//! bounds and alignment checked as the boards' drivers check them. The caller — the board
//! program's store — owns what is stored and when it is erased; this module owns no time and
//! no task: every operation is synchronous positioned file I/O on the calling thread, and its
//! future completes on the first poll.
//!
//! Power cuts ([`CUT`]) are modelled at process level: once armed, the operation that would
//! write or erase past the budget writes only the bytes before that point (in address order)
//! and the process exits at once with [`EXIT_POWER_CUT`]. No fsync is done: a process exit
//! keeps the kernel's page cache, so what was written before the cut is what a restarted
//! node reads (an OS crash or a real power loss is not modelled).

use embedded_storage_async::nor_flash::{
    ErrorType, MultiwriteNorFlash, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Smallest readable unit, in bytes.
pub const READ_SIZE: usize = 1;
/// Write granularity (offset and length alignment), in bytes.
pub const WRITE_SIZE: usize = 4;
/// Erase page size, in bytes.
pub const ERASE_SIZE: usize = 4096;
/// Exit code of the process when an armed power cut fires.
pub const EXIT_POWER_CUT: i32 = 86;

/// Bytes written to any `FileFlash` of this process, in total (cut-short writes excluded).
pub static FLASH_WRITES: AtomicU64 = AtomicU64::new(0);
/// Pages erased on any `FileFlash` of this process, in total (cut-short erases excluded).
pub static FLASH_ERASES: AtomicU64 = AtomicU64::new(0);

/// The process-wide power cut all `FileFlash`es obey.
pub static CUT: PowerCut = PowerCut::new();

/// A power cut that can be armed to fire after a number of bytes written or erased.
///
/// Written and erased bytes both count (an erase of one page counts [`ERASE_SIZE`] bytes).
/// Operations of zero bytes never fire it.
#[derive(Debug)]
pub struct PowerCut {
    /// 0: disarmed; otherwise the remaining budget in bytes plus one.
    state: AtomicU64,
}

impl PowerCut {
    /// A disarmed power cut.
    pub const fn new() -> Self {
        Self {
            state: AtomicU64::new(0),
        }
    }

    /// Arms the cut: `bytes` more bytes may be written or erased; the operation that would
    /// go past them writes only the bytes before that point and then the process exits.
    /// Re-arming replaces the previous budget.
    pub fn arm(&self, bytes: u64) {
        self.state.store(bytes.saturating_add(1), Ordering::SeqCst);
    }

    /// Disarms the cut: operations are no longer limited.
    pub fn disarm(&self) {
        self.state.store(0, Ordering::SeqCst);
    }

    #[cfg(test)]
    /// Whether the cut is armed.
    pub fn is_armed(&self) -> bool {
        self.state.load(Ordering::SeqCst) != 0
    }

    #[cfg(test)]
    /// The remaining budget in bytes, `None` when disarmed.
    pub fn remaining(&self) -> Option<u64> {
        match self.state.load(Ordering::SeqCst) {
            0 => None,
            s => Some(s - 1),
        }
    }

    /// Accounts for an operation of `len` bytes: `None` if it may complete (the budget
    /// shrinks by `len`), `Some(n)` if the power goes after its first `n` bytes (the budget
    /// is then spent).
    fn take(&self, len: usize) -> Option<usize> {
        let mut cut = None;
        // The closure always returns `Some`, so the update cannot fail.
        let _ = self
            .state
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |s| {
                cut = None;
                if s == 0 {
                    return Some(0);
                }
                match allowance(s - 1, len) {
                    None => Some(s - len as u64),
                    Some(n) => {
                        cut = Some(n);
                        Some(1)
                    }
                }
            });
        cut
    }
}

impl Default for PowerCut {
    fn default() -> Self {
        Self::new()
    }
}

/// How much of an operation of `len` bytes happens with `remaining` bytes of budget left:
/// `None` for all of it, `Some(n)` for its first `n` bytes before the cut (`n < len`).
fn allowance(remaining: u64, len: usize) -> Option<usize> {
    if len as u64 <= remaining {
        None
    } else {
        // remaining < len, so it fits in a usize.
        Some(remaining as usize)
    }
}

/// An error of a [`FileFlash`] operation.
#[derive(Debug)]
pub enum FlashError {
    /// Offset or length not aligned to the write or erase size.
    NotAligned,
    /// The range is not inside the flash.
    OutOfBounds,
    /// The backing file failed.
    Io(io::Error),
}

impl fmt::Display for FlashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAligned => f.write_str("flash: arguments not aligned"),
            Self::OutOfBounds => f.write_str("flash: arguments out of bounds"),
            Self::Io(e) => write!(f, "flash: file I/O: {e}"),
        }
    }
}

impl std::error::Error for FlashError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl NorFlashError for FlashError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            Self::NotAligned => NorFlashErrorKind::NotAligned,
            Self::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            Self::Io(_) => NorFlashErrorKind::Other,
        }
    }
}

impl From<io::Error> for FlashError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// A NOR flash of `capacity` bytes backed by a regular file of exactly that length.
#[derive(Debug)]
pub struct FileFlash {
    file: File,
    path: PathBuf,
    capacity: usize,
}

impl FileFlash {
    /// Opens the flash file at `path` holding `size` bytes (a non-zero multiple of
    /// [`ERASE_SIZE`], at most `u32::MAX`; else `InvalidInput`). A missing file is created
    /// erased (all 0xFF); an existing file of exactly `size` bytes is used as it is (it may
    /// hold anything); any other length is refused with `InvalidData`.
    pub fn open(path: &Path, size: usize) -> io::Result<FileFlash> {
        if size == 0 || !size.is_multiple_of(ERASE_SIZE) || u32::try_from(size).is_err() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "flash size {size} is not a non-zero multiple of {ERASE_SIZE} up to {}",
                    u32::MAX
                ),
            ));
        }
        let file = match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
        {
            Ok(file) => {
                let page = [0xFFu8; ERASE_SIZE];
                for start in (0..size).step_by(ERASE_SIZE) {
                    file.write_all_at(&page, start as u64)?;
                }
                file
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let file = OpenOptions::new().read(true).write(true).open(path)?;
                let len = file.metadata()?.len();
                if len != size as u64 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "flash file {} holds {len} bytes, expected {size}",
                            path.display()
                        ),
                    ));
                }
                file
            }
            Err(e) => return Err(e),
        };
        Ok(FileFlash {
            file,
            path: path.to_path_buf(),
            capacity: size,
        })
    }

    #[cfg(test)]
    /// The backing file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `offset..offset + len` if it lies inside the flash and is aligned to `align`.
    fn range(&self, offset: u32, len: usize, align: usize) -> Result<u64, FlashError> {
        let start = offset as usize;
        match start.checked_add(len) {
            Some(end) if end <= self.capacity => {}
            _ => return Err(FlashError::OutOfBounds),
        }
        if !start.is_multiple_of(align) || !len.is_multiple_of(align) {
            return Err(FlashError::NotAligned);
        }
        Ok(u64::from(offset))
    }

    /// Writes `bytes` at `at`, or — when the power cut fires — their first bytes, then exits.
    fn put(&self, at: u64, bytes: &[u8]) -> Result<(), FlashError> {
        if let Some(n) = CUT.take(bytes.len()) {
            let done = match bytes.get(..n) {
                Some(prefix) => self.file.write_all_at(prefix, at),
                None => Ok(()),
            };
            if let Err(e) = done {
                eprintln!("flash {}: before the power cut: {e}", self.path.display());
            }
            eprintln!("power cut");
            std::process::exit(EXIT_POWER_CUT);
        }
        self.file.write_all_at(bytes, at)?;
        Ok(())
    }
}

impl ErrorType for FileFlash {
    type Error = FlashError;
}

impl ReadNorFlash for FileFlash {
    const READ_SIZE: usize = READ_SIZE;

    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        let at = self.range(offset, bytes.len(), READ_SIZE)?;
        self.file.read_exact_at(bytes, at)?;
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.capacity
    }
}

impl NorFlash for FileFlash {
    const WRITE_SIZE: usize = WRITE_SIZE;
    const ERASE_SIZE: usize = ERASE_SIZE;

    async fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        if from > to || to as usize > self.capacity {
            return Err(FlashError::OutOfBounds);
        }
        if !(from as usize).is_multiple_of(ERASE_SIZE) || !(to as usize).is_multiple_of(ERASE_SIZE)
        {
            return Err(FlashError::NotAligned);
        }
        let page = [0xFFu8; ERASE_SIZE];
        for start in (from..to).step_by(ERASE_SIZE) {
            self.put(u64::from(start), &page)?;
            FLASH_ERASES.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        let at = self.range(offset, bytes.len(), WRITE_SIZE)?;
        let mut merged = vec![0u8; bytes.len()];
        self.file.read_exact_at(&mut merged, at)?;
        for (old, new) in merged.iter_mut().zip(bytes) {
            *old &= *new;
        }
        self.put(at, &merged)?;
        FLASH_WRITES.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

/// Writes AND into the stored bits, so a word may be written more than once.
impl MultiwriteNorFlash for FileFlash {}

#[cfg(test)]
mod tests {
    use super::*;
    use embassy_futures::block_on;

    /// A file path in the temp dir, removed when dropped.
    struct TempPath(PathBuf);

    impl TempPath {
        fn new(name: &str) -> Self {
            let path =
                std::env::temp_dir().join(format!("tally-tap-flash-{}-{name}", std::process::id()));
            let _ = std::fs::remove_file(&path);
            Self(path)
        }
    }

    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    const SIZE: usize = 4 * ERASE_SIZE;

    fn contents(path: &Path) -> Vec<u8> {
        std::fs::read(path).expect("read flash file")
    }

    #[test]
    fn fresh_file_is_erased() {
        let tmp = TempPath::new("fresh");
        let mut flash = FileFlash::open(&tmp.0, SIZE).expect("open");
        assert_eq!(flash.capacity(), SIZE);
        assert_eq!(flash.path(), tmp.0.as_path());
        let bytes = contents(&tmp.0);
        assert_eq!(bytes.len(), SIZE);
        assert!(bytes.iter().all(|&b| b == 0xFF));
        let mut buf = [0u8; 3];
        block_on(flash.read(4093, &mut buf)).expect("read");
        assert_eq!(buf, [0xFF; 3]);
    }

    #[test]
    fn bad_sizes_are_refused() {
        let tmp = TempPath::new("badsize");
        for size in [0, 100, ERASE_SIZE + 4] {
            let err = FileFlash::open(&tmp.0, size).expect_err("bad size");
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        }
        assert!(!tmp.0.exists());
    }

    #[test]
    fn write_ands_and_erase_restores_one_page() {
        let tmp = TempPath::new("write");
        let mut flash = FileFlash::open(&tmp.0, SIZE).expect("open");
        let writes = FLASH_WRITES.load(Ordering::Relaxed);
        let erases = FLASH_ERASES.load(Ordering::Relaxed);
        block_on(flash.write(8, &[0xF0, 0x0F, 0xAA, 0x55])).expect("write");
        block_on(flash.write(8, &[0x3C, 0x3C, 0xFF, 0x00])).expect("write again");
        let mut buf = [0u8; 4];
        block_on(flash.read(8, &mut buf)).expect("read");
        assert_eq!(buf, [0x30, 0x0C, 0xAA, 0x00]);
        block_on(flash.write(ERASE_SIZE as u32, &[0; 8])).expect("write page 1");
        assert!(FLASH_WRITES.load(Ordering::Relaxed) >= writes + 16);

        block_on(flash.erase(0, ERASE_SIZE as u32)).expect("erase page 0");
        assert!(FLASH_ERASES.load(Ordering::Relaxed) > erases);
        let bytes = contents(&tmp.0);
        assert!(bytes[..ERASE_SIZE].iter().all(|&b| b == 0xFF));
        assert_eq!(bytes[ERASE_SIZE..ERASE_SIZE + 8], [0; 8]);
        assert!(bytes[ERASE_SIZE + 8..].iter().all(|&b| b == 0xFF));
        // An empty erase is fine and changes nothing.
        block_on(flash.erase(ERASE_SIZE as u32, ERASE_SIZE as u32)).expect("empty erase");
        assert_eq!(contents(&tmp.0), bytes);
    }

    #[test]
    fn bad_ranges_are_errors_and_change_nothing() {
        let tmp = TempPath::new("bounds");
        let mut flash = FileFlash::open(&tmp.0, SIZE).expect("open");
        block_on(flash.write(0, &[0x12; 8])).expect("write");
        let before = contents(&tmp.0);
        let kind = |r: Result<(), FlashError>| r.expect_err("must fail").kind();
        let end = SIZE as u32;
        let mut buf = [0u8; 4];

        assert_eq!(
            kind(block_on(flash.write(2, &[0; 4]))),
            NorFlashErrorKind::NotAligned
        );
        assert_eq!(
            kind(block_on(flash.write(4, &[0; 3]))),
            NorFlashErrorKind::NotAligned
        );
        assert_eq!(
            kind(block_on(flash.write(end - 4, &[0; 8]))),
            NorFlashErrorKind::OutOfBounds
        );
        assert_eq!(
            kind(block_on(flash.write(end, &[0; 4]))),
            NorFlashErrorKind::OutOfBounds
        );
        assert_eq!(
            kind(block_on(flash.write(u32::MAX, &[0; 4]))),
            NorFlashErrorKind::OutOfBounds
        );
        assert_eq!(
            kind(block_on(flash.read(end - 3, &mut buf))),
            NorFlashErrorKind::OutOfBounds
        );
        assert_eq!(
            kind(block_on(flash.erase(0, 100))),
            NorFlashErrorKind::NotAligned
        );
        assert_eq!(
            kind(block_on(flash.erase(4, ERASE_SIZE as u32))),
            NorFlashErrorKind::NotAligned
        );
        assert_eq!(
            kind(block_on(flash.erase(0, end + 4096))),
            NorFlashErrorKind::OutOfBounds
        );
        assert_eq!(
            kind(block_on(flash.erase(8192, 4096))),
            NorFlashErrorKind::OutOfBounds
        );
        assert_eq!(contents(&tmp.0), before);

        let io = FlashError::Io(io::Error::other("disk on fire"));
        assert_eq!(io.kind(), NorFlashErrorKind::Other);
        assert!(io.to_string().contains("disk on fire"));
        assert!(format!("{io:?}").contains("disk on fire"));
    }

    #[test]
    fn reopen_keeps_data() {
        let tmp = TempPath::new("reopen");
        {
            let mut flash = FileFlash::open(&tmp.0, SIZE).expect("open");
            block_on(flash.write(4096, &[1, 2, 3, 4])).expect("write");
        }
        let mut flash = FileFlash::open(&tmp.0, SIZE).expect("reopen");
        let mut buf = [0u8; 4];
        block_on(flash.read(4096, &mut buf)).expect("read");
        assert_eq!(buf, [1, 2, 3, 4]);
    }

    #[test]
    fn wrong_length_file_is_refused() {
        let tmp = TempPath::new("length");
        std::fs::write(&tmp.0, [0u8; 100]).expect("write file");
        let err = FileFlash::open(&tmp.0, SIZE).expect_err("wrong length");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let text = err.to_string();
        assert!(text.contains(&tmp.0.display().to_string()), "{text}");
        assert!(
            text.contains("100") && text.contains(&SIZE.to_string()),
            "{text}"
        );
        assert_eq!(contents(&tmp.0), [0u8; 100]);
    }

    #[test]
    fn foreign_file_is_used_as_is() {
        let tmp = TempPath::new("foreign");
        let foreign: Vec<u8> = (0..SIZE).map(|i| (i * 7) as u8).collect();
        std::fs::write(&tmp.0, &foreign).expect("write file");
        let mut flash = FileFlash::open(&tmp.0, SIZE).expect("open");
        let mut buf = [0u8; 5];
        block_on(flash.read(10, &mut buf)).expect("read");
        assert_eq!(buf, foreign[10..15]);
        assert_eq!(contents(&tmp.0), foreign);
    }

    #[test]
    fn allowance_cuts_only_past_the_budget() {
        assert_eq!(allowance(10, 0), None);
        assert_eq!(allowance(10, 4), None);
        assert_eq!(allowance(10, 10), None);
        assert_eq!(allowance(10, 11), Some(10));
        assert_eq!(allowance(0, 4), Some(0));
        assert_eq!(allowance(0, 0), None);
        assert_eq!(allowance(u64::MAX, usize::MAX), None);
    }

    #[test]
    fn power_cut_budget() {
        let cut = PowerCut::new();
        assert!(!cut.is_armed());
        assert_eq!(cut.take(1_000_000), None);
        assert_eq!(cut.remaining(), None);
        cut.arm(10);
        assert_eq!(cut.remaining(), Some(10));
        assert_eq!(cut.take(4), None);
        assert_eq!(cut.remaining(), Some(6));
        assert_eq!(cut.take(6), None);
        assert_eq!(cut.take(0), None);
        assert_eq!(cut.take(4), Some(0));
        cut.arm(3);
        assert_eq!(cut.take(8), Some(3));
        assert_eq!(cut.remaining(), Some(0));
        cut.arm(u64::MAX);
        assert_eq!(cut.remaining(), Some(u64::MAX - 1));
        cut.disarm();
        assert!(!cut.is_armed());
        assert_eq!(cut.take(8), None);
    }

    const CHILD_PATH: &str = "TALLY_TAP_FLASH_CUT_PATH";
    const CHILD_MODE: &str = "TALLY_TAP_FLASH_CUT_MODE";

    /// Runs in the child process of `power_cut_exits_and_keeps_prefix` only (does nothing
    /// otherwise): arms the process's cut and writes or erases past it.
    #[test]
    fn power_cut_child() {
        let (Some(path), Some(mode)) = (std::env::var_os(CHILD_PATH), std::env::var_os(CHILD_MODE))
        else {
            return;
        };
        let mut flash = FileFlash::open(Path::new(&path), SIZE).expect("open");
        match mode.to_str() {
            Some("write") => {
                CUT.arm(10);
                block_on(flash.write(0, &[0x0F; 8])).expect("write within budget");
                let _ = block_on(flash.write(ERASE_SIZE as u32, &[0x00; 8]));
            }
            Some("erase") => {
                block_on(flash.write(ERASE_SIZE as u32, &[0x00; 200])).expect("write");
                CUT.arm(100);
                let _ = block_on(flash.erase(ERASE_SIZE as u32, 2 * ERASE_SIZE as u32));
            }
            _ => panic!("unknown mode"),
        }
        panic!("the power cut did not fire");
    }

    fn run_child(mode: &str, path: &Path) -> std::process::Output {
        let exe = std::env::current_exe().expect("current exe");
        std::process::Command::new(exe)
            .args(["--exact", "flash::tests::power_cut_child", "--nocapture"])
            .env(CHILD_PATH, path)
            .env(CHILD_MODE, mode)
            .output()
            .expect("run child")
    }

    #[test]
    fn power_cut_exits_and_keeps_prefix() {
        let tmp = TempPath::new("cut-write");
        let out = run_child("write", &tmp.0);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(EXIT_POWER_CUT), "{stderr}");
        assert!(stderr.contains("power cut"), "{stderr}");
        let bytes = contents(&tmp.0);
        assert_eq!(bytes.len(), SIZE);
        assert_eq!(bytes[..8], [0x0F; 8]);
        assert_eq!(bytes[ERASE_SIZE..ERASE_SIZE + 2], [0x00; 2]);
        assert!(bytes[8..ERASE_SIZE].iter().all(|&b| b == 0xFF));
        assert!(bytes[ERASE_SIZE + 2..].iter().all(|&b| b == 0xFF));

        let tmp = TempPath::new("cut-erase");
        let out = run_child("erase", &tmp.0);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(EXIT_POWER_CUT), "{stderr}");
        let bytes = contents(&tmp.0);
        assert!(bytes[..ERASE_SIZE + 100].iter().all(|&b| b == 0xFF));
        assert_eq!(bytes[ERASE_SIZE + 100..ERASE_SIZE + 200], [0x00; 100]);
        assert!(bytes[ERASE_SIZE + 200..].iter().all(|&b| b == 0xFF));
    }
}
