//! Shared helpers for Tally's integration tests.
