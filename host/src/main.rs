//! The `tally` command.

fn main() {
    println!("tally {}", env!("CARGO_PKG_VERSION"));
}
