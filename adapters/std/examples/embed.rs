//! Linking Tally into another program: two nodes in one process, gossiping over loopback TCP.
//!
//! `cargo run -p tally-std --example embed`

use std::time::{Duration, Instant};
use tally_std::{Node, NodeConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let any_port = "127.0.0.1:0".parse()?;
    let a = Node::start(NodeConfig::new(any_port).sync_interval(Duration::from_millis(100)))?;
    let b = Node::start(
        NodeConfig::new(any_port)
            .sync_interval(Duration::from_millis(100))
            .peers([a.local_addr().to_string()]),
    )?;
    a.increment(2)?;
    b.increment(1)?;
    b.decrement(1)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while (a.value(), b.value()) != (2, 2) {
        if Instant::now() > deadline {
            return Err(format!("no agreement: a={} b={}", a.value(), b.value()).into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    println!("a = {}, b = {}: agreed", a.value(), b.value());
    Ok(())
}
