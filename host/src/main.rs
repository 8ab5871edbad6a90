//! The `tally` command: parses arguments and runs them (see `tally --help`).

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    tally::cli::run(tally::cli::Cli::parse())
}
