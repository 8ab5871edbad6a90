//! Reading secrets (cluster key, API token) from files or the environment — never from the
//! command line, never into logs.

use anyhow::{bail, Context};
use std::path::Path;
use tally_core::ClusterKey;

/// The environment variable that may hold the cluster key (hex).
pub const CLUSTER_KEY_ENV: &str = "TALLY_CLUSTER_KEY";

/// The cluster key from `--cluster-key-file` and/or `TALLY_CLUSTER_KEY`; both given must agree.
pub fn cluster_key(file: Option<&Path>) -> anyhow::Result<Option<ClusterKey>> {
    let from_file =
        match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading the cluster key file {}", path.display()))?;
                Some(ClusterKey::from_hex(&text).with_context(|| {
                    format!("the cluster key in {} is not valid", path.display())
                })?)
            }
            None => None,
        };
    let from_env = match std::env::var(CLUSTER_KEY_ENV) {
        Ok(text) if !text.trim().is_empty() => Some(
            ClusterKey::from_hex(&text)
                .with_context(|| format!("the cluster key in {CLUSTER_KEY_ENV} is not valid"))?,
        ),
        _ => None,
    };
    match (from_file, from_env) {
        (Some(a), Some(b)) if a != b => {
            bail!("--cluster-key-file and {CLUSTER_KEY_ENV} hold different keys: give one")
        }
        (a, b) => Ok(a.or(b)),
    }
}

/// The API token from a file (trimmed; at least 16 characters).
pub fn api_token(file: Option<&Path>) -> anyhow::Result<Option<String>> {
    let Some(path) = file else { return Ok(None) };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the API token file {}", path.display()))?;
    let token = text.trim().to_string();
    if token.len() < 16 || token.chars().any(char::is_whitespace) {
        bail!(
            "the API token in {} must be at least 16 characters without spaces",
            path.display()
        );
    }
    Ok(Some(token))
}
