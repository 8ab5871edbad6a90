//! Build-time settings: peers come as one comma-separated string (`TALLY_PEERS`).

/// Most static peers a board takes from its build-time list.
pub const MAX_PEERS: usize = 8;

/// Splits `a,b,c` (spaces around items ignored, empty items skipped) into at most
/// [`MAX_PEERS`] addresses; extra items are dropped.
pub fn peers(list: &str) -> heapless::Vec<&str, MAX_PEERS> {
    let mut out = heapless::Vec::new();
    for p in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if out.push(p).is_err() {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_trims() {
        assert_eq!(peers("").len(), 0);
        assert_eq!(
            peers(" 10.0.0.1:9000, ,10.0.0.2:9000 ").as_slice(),
            ["10.0.0.1:9000", "10.0.0.2:9000"]
        );
        let many = "1.1.1.1:1,".repeat(20);
        assert_eq!(peers(&many).len(), MAX_PEERS);
    }
}
