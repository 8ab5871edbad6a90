//! [`FsyncPolicy`]: when appended records are forced to stable storage.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;
use thiserror::Error;

/// When the writer calls `fsync` (`fdatasync`), and so what an acknowledgement means.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Every batch is fsynced before its records are acknowledged: an acknowledged record
    /// survives `kill -9` and power loss. The default, and the only policy that keeps the
    /// durability promise.
    #[default]
    Always,
    /// Records are acknowledged once written (they survive `kill -9` of the process, which
    /// leaves the page cache to the kernel) and fsynced at most this long afterwards: a power
    /// loss can drop up to that much acknowledged history.
    Interval(Duration),
    /// **Unsafe**: records are acknowledged once written and not fsynced until their segment
    /// is closed (rotation), a snapshot is taken or the log is closed. A power loss or kernel
    /// crash may drop any amount of acknowledged history. For benchmarks and throwaway nodes.
    Never,
}

/// A policy string that is not `always`, `interval=DUR` or `never`.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("invalid fsync policy {input:?}: {reason}; expected \"always\", \"interval=DUR\" (e.g. \"interval=200ms\") or \"never\"")]
pub struct ParsePolicyError {
    input: String,
    reason: String,
}

impl FromStr for FsyncPolicy {
    type Err = ParsePolicyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| ParsePolicyError {
            input: s.to_owned(),
            reason,
        };
        let trimmed = s.trim();
        match trimmed.to_ascii_lowercase().as_str() {
            "always" => return Ok(Self::Always),
            "never" => return Ok(Self::Never),
            _ => {}
        }
        let Some((key, value)) = trimmed.split_once('=') else {
            return Err(err("unknown policy".to_owned()));
        };
        if !key.trim().eq_ignore_ascii_case("interval") {
            return Err(err(format!("unknown policy {:?}", key.trim())));
        }
        let dur = humantime::parse_duration(value.trim())
            .map_err(|e| err(format!("bad duration {:?}: {e}", value.trim())))?;
        if dur.is_zero() {
            return Err(err(
                "the interval must be positive (use \"always\")".to_owned()
            ));
        }
        Ok(Self::Interval(dur))
    }
}

impl fmt::Display for FsyncPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Always => f.write_str("always"),
            Self::Interval(d) => write!(f, "interval={}", humantime::format_duration(*d)),
            Self::Never => f.write_str("never"),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )]
    use super::*;

    #[test]
    fn wal_policy_parses_and_round_trips() {
        assert_eq!("always".parse(), Ok(FsyncPolicy::Always));
        assert_eq!(" Never ".parse(), Ok(FsyncPolicy::Never));
        let p: FsyncPolicy = "interval=200ms".parse().unwrap();
        assert_eq!(p, FsyncPolicy::Interval(Duration::from_millis(200)));
        assert_eq!(p.to_string().parse(), Ok(p));
        assert_eq!(
            "interval=1s 500ms".parse(),
            Ok(FsyncPolicy::Interval(Duration::from_millis(1500)))
        );
        for bad in [
            "",
            "sometimes",
            "interval",
            "interval=",
            "interval=fast",
            "interval=0s",
        ] {
            let e = bad.parse::<FsyncPolicy>().unwrap_err().to_string();
            assert!(e.contains("expected \"always\""), "{bad}: {e}");
        }
    }
}
