//! # tally-board
//!
//! What the Pico W, W5500-EVB-Pico and ESP32-C3 firmware share, independent of the chip:
//!
//! - [`persist`]: the node's records in flash with `sequential-storage` (power-fail safe: a
//!   cut mid-write leaves the previous value readable), the node's replica built from them
//!   (`name#incarnation`, a fresh incarnation whenever the store cannot be restored), and the
//!   persistence task that commits presses once they are in flash;
//! - [`node`]: the node started from all that, before the network is up;
//! - [`program`]: the board program every firmware and the TAP node run: node, persistence,
//!   buttons and main loop, in one task;
//! - [`button`]: a debounced press on any `embedded-hal-async` input, and the counting loop;
//! - [`buttons`]: which counter each button counts on (`TALLY_BUTTONS`);
//! - [`show`]: the LED blink on every change;
//! - [`supervise`]: the main loop — link kept up, LED commands bounded, watchdog fed;
//! - [`settings`]: the build-time peer list and cluster key, and the W5500's MAC.
#![no_std]

#[macro_use]
mod fmt;

pub mod button;
pub mod buttons;
pub mod node;
pub mod persist;
pub mod program;
pub mod settings;
pub mod show;
pub mod supervise;
