//! Errors: a data directory that is a file, read-only, or full fails `open` with an error naming
//! it; a write or fsync failure at run time poisons the log (every later append and wait fails,
//! nothing is acknowledged silently); a newer format version, and a segment numbered beyond what
//! any log reaches, are refused and left untouched.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use tally::wal::format::{encode_header, encode_snapshot};
use tally::wal::segment::{segment_name, MAX_SEQUENCE};
use tally::wal::{SimStorage, Wal, WalConfig, WalError};

fn names(err: &WalError, path: &Path) {
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "{msg:?} does not name {path:?}"
    );
}

#[test]
fn wal_error_data_dir_is_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let err = Wal::open(WalConfig::new(&file)).unwrap_err();
    assert!(matches!(err, WalError::NotADirectory { .. }), "{err}");
    names(&err, &file);
    let below = file.join("data");
    let err = Wal::open(WalConfig::new(&below)).unwrap_err();
    names(&err, &below);
    println!("{err}");
}

/// A tmpfs mounted for one test, unmounted on drop. Mounting needs root, which CI has: where
/// it is refused the test fails, saying why.
struct Mount(PathBuf, #[allow(dead_code)] tempfile::TempDir);

impl Mount {
    fn tmpfs(options: &str) -> Mount {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tally-wal-test"])
            .arg(dir.path())
            .output()
            .expect("run mount (this test needs root, as in CI)");
        assert!(
            out.status.success(),
            "cannot mount a tmpfs (this test needs root, as in CI): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Mount(dir.path().to_path_buf(), dir)
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// `tally node --data-dir dir` as a user that permission bits apply to: itself when it is not
/// privileged, else the `nobody` user (through `setpriv`, from a copy of the binary that user
/// may run). Returns the exit status and what it printed on stderr.
fn node_in(dir: &Path, work: &Path, privileged: bool) -> (std::process::ExitStatus, String) {
    let args = [
        "node",
        "--listen",
        "127.0.0.1:0",
        "--http",
        "127.0.0.1:0",
        "--data-dir",
    ];
    let mut cmd = if privileged {
        let bin = work.join("tally");
        std::fs::copy(env!("CARGO_BIN_EXE_tally"), &bin).unwrap();
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(bin);
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_tally"))
    };
    let out = cmd
        .args(args)
        .arg(dir)
        .output()
        .expect("run tally (as root: through setpriv, from util-linux)");
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn wal_error_read_only_directory() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let ro = tmp.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    // Root ignores permission bits: find out by trying, not by asking who we are.
    let privileged = std::fs::write(ro.join("probe"), b"x").is_ok();
    let _ = std::fs::remove_file(ro.join("probe"));
    if !privileged {
        let err = Wal::open(WalConfig::new(&ro)).unwrap_err();
        assert!(matches!(err, WalError::PermissionDenied { .. }), "{err}");
        names(&err, &ro);
    }
    // The node, as a user the bits apply to, refuses to start and says where and why.
    for dir in [ro.clone(), ro.join("sub")] {
        let (status, stderr) = node_in(&dir, tmp.path(), privileged);
        assert!(!status.success(), "started in {dir:?}: {stderr}");
        assert!(stderr.contains("permission denied"), "{stderr}");
        assert!(stderr.contains(&dir.display().to_string()), "{stderr}");
        println!("{}", stderr.trim());
    }
    assert!(
        !ro.join("sub").exists() && !ro.join("LOCK").exists(),
        "nothing written"
    );
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();

    // A read-only file system applies to root too.
    let mount = Mount::tmpfs("ro,size=64k");
    let err = Wal::open(WalConfig::new(&mount.0)).unwrap_err();
    assert!(matches!(err, WalError::ReadOnly { .. }), "{err}");
    names(&err, &mount.0);
    let err = Wal::open(WalConfig::new(mount.0.join("data"))).unwrap_err();
    assert!(matches!(err, WalError::ReadOnly { .. }), "{err}");
    println!("{err}");
}

#[test]
fn wal_error_disk_full_at_open_and_at_run_time() {
    let mount = Mount::tmpfs("size=256k");
    let dir = mount.0.join("data");
    let (wal, _) = Wal::open(WalConfig::new(&dir)).unwrap();
    let id = "n".repeat(255);
    let mut acked = 0;
    let err = loop {
        let ticket = match wal.append_local(&id, acked + 1, 0) {
            Ok(t) => t,
            Err(e) => break e,
        };
        match wal.wait(ticket) {
            Ok(()) => acked += 1,
            Err(e) => break e,
        }
        assert!(acked < 10_000, "the 256 KiB tmpfs never filled up");
    };
    println!("after {acked} acknowledged records: {err}");
    assert!(err.is_disk_full(), "{err}");
    names(&err, &dir);
    // Poisoned: everything fails from now on, even though space may free up.
    assert!(matches!(
        wal.append_local(&id, acked + 2, 0),
        Err(WalError::Failed(_))
    ));
    assert!(wal.close().is_err());

    // A full disk at open: the lock file's write fails.
    let filler = mount.0.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let _ = std::io::Write::write_all(&mut f, &vec![0u8; 1 << 20]);
    drop(f);
    let other = mount.0.join("other");
    let err = Wal::open(WalConfig::new(&other)).unwrap_err();
    assert!(err.is_disk_full(), "{err}");
    names(&err, &other);
    println!("{err}");

    // With space again, recovery keeps every acknowledged record.
    std::fs::remove_file(&filler).unwrap();
    let (_wal, rec) = Wal::open(WalConfig::new(&dir)).unwrap();
    assert!(rec.entries[0].1 >= acked, "{:?} < {acked}", rec.entries[0]);
}

fn sim_open(storage: &SimStorage) -> Result<(Wal, tally::wal::Recovered), WalError> {
    Wal::open_with(WalConfig::new("/data"), Arc::new(storage.clone()))
}

#[test]
fn wal_error_write_failure_poisons() {
    let sim = SimStorage::new();
    let (wal, _) = sim_open(&sim).unwrap();
    let first = wal.append_local("me", 1, 0).unwrap();
    wal.wait(first).unwrap();
    sim.fail_next_append(ErrorKind::StorageFull);
    let t = wal.append_local("me", 2, 0).unwrap();
    let err = wal.wait(t).unwrap_err();
    assert!(err.is_disk_full(), "{err}");
    assert!(err.to_string().contains("disk full"), "{err}");
    names(&err, &Path::new("/data").join(segment_name(1)));
    // The fault was one-shot, but the log stays failed.
    assert!(matches!(
        wal.append_local("me", 3, 0),
        Err(WalError::Failed(_))
    ));
    assert!(matches!(wal.wait(first), Err(WalError::Failed(_))));
    assert!(matches!(wal.snapshot(&[]), Err(WalError::Failed(_))));
    assert!(wal.close().is_err());
    // Half a record reached the file: recovery cuts it and keeps the acknowledged one.
    let (_wal, rec) = sim_open(&sim).unwrap();
    assert_eq!(rec.entries, vec![("me".to_owned(), 1, 0)]);
    assert!(rec.dropped_bytes > 0);
}

#[test]
fn wal_error_fsync_failure_poisons() {
    let sim = SimStorage::new();
    let (wal, _) = sim_open(&sim).unwrap();
    wal.wait(wal.append_local("me", 1, 0).unwrap()).unwrap();
    sim.fail_next_sync(ErrorKind::Other);
    let err = wal.wait(wal.append_local("me", 2, 0).unwrap()).unwrap_err();
    assert!(
        matches!(
            err.root(),
            WalError::Io {
                op: "fsync segment",
                ..
            }
        ),
        "{err}"
    );
    for _ in 0..3 {
        assert!(
            wal.append_local("me", 9, 0).is_err(),
            "never a silent success"
        );
    }
    drop(wal);
    // Power loss right after: the record whose fsync failed may be gone; the acked one is not.
    let sim = sim.crash();
    let (_wal, rec) = sim_open(&sim).unwrap();
    assert_eq!(rec.entries, vec![("me".to_owned(), 1, 0)]);
}

#[test]
fn wal_error_fsync_failure_at_open() {
    let sim = SimStorage::new();
    sim.fail_next_sync(ErrorKind::StorageFull);
    let err = sim_open(&sim).unwrap_err();
    assert!(err.is_disk_full(), "{err}");
    names(&err, Path::new("/data"));
    drop(sim_open(&sim).unwrap());
}

#[test]
fn wal_error_newer_format_version_is_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(WalConfig::new(tmp.path())).unwrap();
    wal.wait(wal.append_local("me", 1, 0).unwrap()).unwrap();
    drop(wal);
    let path = tmp.path().join(segment_name(1));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[8] = 4;
    std::fs::write(&path, &bytes).unwrap();
    let err = Wal::open(WalConfig::new(tmp.path())).unwrap_err();
    assert!(
        matches!(err, WalError::UnsupportedVersion { version: 4, .. }),
        "{err}"
    );
    names(&err, &path);
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "untouched");
}

#[test]
fn wal_error_segment_number_out_of_range_is_left_alone() {
    // Found by fuzzing: a directory whose newest segment is u64::MAX (and starts with a
    // snapshot) made recovery delete the older segments, then fail to create the next one
    // with a bare "already exists". Such numbers are refused before anything is touched.
    let tmp = tempfile::tempdir().unwrap();
    let older = tmp.path().join(segment_name(3));
    std::fs::write(&older, encode_header(3)).unwrap();
    for seq in [MAX_SEQUENCE + 1, u64::MAX] {
        let path = tmp.path().join(segment_name(seq));
        let mut bytes = encode_header(seq).to_vec();
        encode_snapshot(&mut bytes, &[("a:1".into(), 5, 0)]).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        let err = Wal::open(WalConfig::new(tmp.path())).unwrap_err();
        assert!(
            matches!(err, WalError::SequenceOutOfRange { seq: s, .. } if s == seq),
            "{err}"
        );
        names(&err, &path);
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "untouched");
        assert_eq!(
            std::fs::read(&older).unwrap(),
            encode_header(3),
            "older segment kept"
        );
        std::fs::remove_file(&path).unwrap();
    }
    // The bound itself is a segment like any other.
    let path = tmp.path().join(segment_name(MAX_SEQUENCE));
    let mut bytes = encode_header(MAX_SEQUENCE).to_vec();
    encode_snapshot(&mut bytes, &[("a:1".into(), 5, 0)]).unwrap();
    std::fs::write(&path, &bytes).unwrap();
    let (wal, recovered) = Wal::open(WalConfig::new(tmp.path())).unwrap();
    assert_eq!(recovered.entries, vec![("a:1".to_string(), 5, 0)]);
    wal.wait(wal.append_local("a:1", 6, 0).unwrap()).unwrap();
}
