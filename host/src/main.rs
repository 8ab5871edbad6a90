//! The `tally` command. Today: a local cluster of real engines on the simulated network.

use std::process::ExitCode;

fn main() -> ExitCode {
    let (ok, report) = tally::demo::run(tally::demo::DemoConfig::default());
    print!("{report}");
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
