//! # tally-board
//!
//! What the Pico W, W5500-EVB-Pico and ESP32-C3 firmware share, independent of the chip:
//!
//! - [`persist`]: the node's own entry and the known state in flash with `sequential-storage`
//!   (power-fail safe: a cut mid-write leaves the previous value readable);
//! - [`button`]: a debounced press on any `embedded-hal-async` input;
//! - [`settings`]: the build-time peer list.
#![no_std]

pub mod button;
pub mod persist;
pub mod settings;
