//! # tally-std
//!
//! Binds the `tally-core` engine to std TCP. (Filled by the host-nodes work; this crate is
//! a placeholder so the workspace layout is complete.)
