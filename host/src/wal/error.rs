//! [`WalError`]: everything that can go wrong, with messages that name the file or directory and
//! the cause.

use super::format::RecordError;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;

/// An error of the write-ahead log.
///
/// It is `Clone` so that one failure can be handed to every waiter: the I/O cause is shared
/// behind an [`Arc`].
#[derive(Clone, Debug, Error)]
pub enum WalError {
    /// The data directory path exists and is not a directory.
    #[error("data directory {}: not a directory", dir.display())]
    NotADirectory {
        /// The configured data directory.
        dir: PathBuf,
    },
    /// Permission denied (EACCES, EPERM).
    #[error("{op} {}: permission denied ({cause})", path.display())]
    PermissionDenied {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        cause: Arc<io::Error>,
    },
    /// The file system is mounted read-only (EROFS).
    #[error("{op} {}: read-only file system ({cause})", path.display())]
    ReadOnly {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        cause: Arc<io::Error>,
    },
    /// No space left on the device (ENOSPC) or quota exceeded.
    #[error("{op} {}: disk full ({cause})", path.display())]
    DiskFull {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        cause: Arc<io::Error>,
    },
    /// Any other I/O error.
    #[error("{op} {}: {cause}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        cause: Arc<io::Error>,
    },
    /// Another process (or another [`Wal`](super::Wal) in this one) holds the directory's lock.
    #[error("data directory {}: in use by another process (its LOCK file is locked)", dir.display())]
    Locked {
        /// The data directory.
        dir: PathBuf,
    },
    /// A segment written by a newer format version: it is left untouched.
    #[error("segment {}: format version {version}, this build reads only version {}; \
             refusing to recover (and to truncate) it", path.display(), super::format::VERSION)]
    UnsupportedVersion {
        /// The segment file.
        path: PathBuf,
        /// The version in its header.
        version: u16,
    },
    /// A segment numbered above [`MAX_SEQUENCE`](super::segment::MAX_SEQUENCE): a log starts
    /// at 1 and counts up by one, so only a corrupt or foreign directory holds one. It is left
    /// untouched.
    #[error("segment {}: sequence number {seq} is above {}, which no log of Tally's reaches; \
             the directory is corrupt or not Tally's; refusing to recover it",
             path.display(), super::segment::MAX_SEQUENCE)]
    SequenceOutOfRange {
        /// The segment file.
        path: PathBuf,
        /// Its sequence number.
        seq: u64,
    },
    /// A record that cannot be encoded (id or entry count beyond the format's limits).
    #[error("invalid record: {0}")]
    InvalidRecord(#[from] RecordError),
    /// A write or fsync failed earlier: the log is poisoned and refuses everything.
    #[error("the write-ahead log failed and accepts no more writes: {0}")]
    Failed(Arc<WalError>),
    /// The log was closed.
    #[error("the write-ahead log is closed")]
    Closed,
}

impl WalError {
    /// Classifies an I/O error of `op` on `path` by its kind.
    pub fn io(op: &'static str, path: &Path, cause: io::Error) -> Self {
        let path = path.to_path_buf();
        let kind = cause.kind();
        let cause = Arc::new(cause);
        match kind {
            io::ErrorKind::PermissionDenied => Self::PermissionDenied { op, path, cause },
            io::ErrorKind::ReadOnlyFilesystem => Self::ReadOnly { op, path, cause },
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
                Self::DiskFull { op, path, cause }
            }
            _ => Self::Io { op, path, cause },
        }
    }

    /// The error at the root of a [`WalError::Failed`] (or `self`).
    pub fn root(&self) -> &WalError {
        match self {
            Self::Failed(inner) => inner.root(),
            other => other,
        }
    }

    /// Whether the root cause is a full disk.
    pub fn is_disk_full(&self) -> bool {
        matches!(self.root(), Self::DiskFull { .. })
    }
}
