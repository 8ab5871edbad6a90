//! # tally-embassy
//!
//! Binds the `tally-core` engine to embassy-net TCP. (Filled by the embedded work; this crate
//! is a placeholder so the workspace layout is complete.)
#![no_std]
