//! SWIM membership (`tally_core::membership`) on the simulated datagram network: nodes join
//! through one seed, a killed node is declared down by every other and nobody else is, a
//! restarted node is readmitted, and bad datagrams are refused without changing anything.

use tally_core::auth::ClusterKey;
use tally_core::membership::{lan_config, MemberEvent, Membership, MembershipError, OVERHEAD};
use tally_core::sim::{SimRng, SwimNet};
use tally_core::{Instant, NodeId};

fn secs(s: u64) -> Instant {
    Instant::from_millis(s * 1000)
}

fn config() -> tally_core::membership::SwimConfig {
    lan_config(1200 - OVERHEAD)
}

fn all_see(net: &SwimNet, n: usize, subject: usize, live: bool) -> bool {
    (0..n)
        .filter(|&o| o != subject && net.node(o).is_some())
        .all(|o| net.sees_live(o, subject) == live)
}

#[test]
fn join_kill_detect_and_readmit() {
    let n = 8;
    let mut net = SwimNet::new(n, config(), 0.0, 7);
    net.run_until(secs(10));
    for s in 0..n {
        assert!(
            all_see(&net, n, s, true),
            "node {s} not live everywhere after joining"
        );
    }
    assert!(
        net.downs.is_empty(),
        "false downs while joining: {:?}",
        net.downs
    );

    net.kill(5);
    let killed_at = net.now();
    net.run_until(secs(40));
    let mut observers: Vec<usize> = net
        .downs
        .iter()
        .filter(|d| d.subject == 5)
        .map(|d| d.observer)
        .collect();
    observers.sort_unstable();
    observers.dedup();
    assert_eq!(
        observers,
        vec![0, 1, 2, 3, 4, 6, 7],
        "who declared node 5 down"
    );
    assert!(
        net.downs.iter().all(|d| d.subject == 5),
        "a live node was declared down: {:?}",
        net.downs
    );
    let last = net.downs.iter().map(|d| d.at).max();
    assert!(last.is_some_and(|t| t > killed_at));

    let ups_before = net.ups.len();
    net.restart(5, 0);
    net.run_until(secs(80));
    assert!(
        all_see(&net, n, 5, true),
        "node 5 not readmitted everywhere"
    );
    let back: Vec<_> = net.ups[ups_before..]
        .iter()
        .filter(|u| u.subject == 5)
        .map(|u| u.observer)
        .collect();
    assert!(
        back.len() >= n - 1,
        "Up events for node 5 after restart: {back:?}"
    );
    // Node 5 sees everybody again, too.
    for s in (0..n).filter(|&s| s != 5) {
        assert!(
            net.sees_live(5, s),
            "restarted node 5 does not see node {s}"
        );
    }
    let gen = net.node(0).and_then(|m| {
        m.members()
            .find(|v| v.addr.as_str() == "10.0.0.6:9000")
            .map(|v| v.generation)
    });
    assert!(
        gen.is_some_and(|g| g >= 1),
        "readmitted in a new generation: {gen:?}"
    );
}

#[test]
fn loss_does_not_partition_membership() {
    // 20 % loss for two minutes: nobody is declared down.
    let n = 12;
    let mut net = SwimNet::new(n, config(), 0.2, 11);
    net.run_until(secs(120));
    assert!(
        net.downs.is_empty(),
        "false positives at 20% loss: {:?}",
        net.downs
    );
    for s in 0..n {
        assert!(all_see(&net, n, s, true), "node {s} missing");
    }
}

fn pair(key_a: Option<ClusterKey>, key_b: Option<ClusterKey>) -> (Membership<32>, Membership<32>) {
    let a = NodeId::new("127.0.0.1:9000").ok();
    let b = NodeId::new("127.0.0.1:9001").ok();
    let (Some(a), Some(b)) = (a, b) else {
        panic!("addresses");
    };
    (
        Membership::new(a, config(), 1200, 1, key_a),
        Membership::new(b, config(), 1200, 2, key_b),
    )
}

/// A's first datagram (its announce to B).
fn first_datagram(a: &mut Membership<32>) -> Vec<u8> {
    let b = NodeId::<32>::new("127.0.0.1:9001").ok();
    a.announce(Instant::ZERO, b.unwrap_or_else(|| panic!("id")));
    let mut buf = [0u8; 1500];
    let (_, len) = a
        .poll_transmit(&mut buf)
        .unwrap_or_else(|| panic!("no announce"));
    buf[..len].to_vec()
}

#[test]
fn keys_and_garbage_are_refused() {
    let key = |b: u8| ClusterKey::from_bytes(&[b; 16]).ok();
    // Same key: taken, and B answers (a Feed).
    let (mut a, mut b) = pair(key(1), key(1));
    let d = first_datagram(&mut a);
    assert_eq!(d[0], 0, "membership datagrams start with a zero byte");
    assert_eq!(b.handle_datagram(Instant::ZERO, &d), Ok(()));
    let mut buf = [0u8; 1500];
    assert!(
        b.poll_transmit(&mut buf).is_some(),
        "no answer to an announce"
    );

    // Another key, no key, a key where none is set.
    let (mut a, mut b) = pair(key(1), key(2));
    let d = first_datagram(&mut a);
    assert_eq!(
        b.handle_datagram(Instant::ZERO, &d),
        Err(MembershipError::Unauthenticated)
    );
    let (mut a, mut b) = pair(None, key(2));
    let d = first_datagram(&mut a);
    assert_eq!(
        b.handle_datagram(Instant::ZERO, &d),
        Err(MembershipError::Unauthenticated)
    );
    let (mut a, mut b) = pair(key(1), None);
    let d = first_datagram(&mut a);
    assert_eq!(
        b.handle_datagram(Instant::ZERO, &d),
        Err(MembershipError::UnexpectedAuth)
    );
    // A flipped bit in an authenticated one.
    let (mut a, mut b) = pair(key(1), key(1));
    let mut d = first_datagram(&mut a);
    let mid = d.len() / 2;
    d[mid] ^= 1;
    assert_eq!(
        b.handle_datagram(Instant::ZERO, &d),
        Err(MembershipError::Unauthenticated)
    );
    assert_eq!(b.members().count(), 0, "a refused datagram added a member");

    // Without keys: truncations and random bytes never panic and add nobody.
    let (mut a, mut b) = pair(None, None);
    let d = first_datagram(&mut a);
    for cut in 0..d.len() {
        let _ = b.handle_datagram(Instant::ZERO, &d[..cut]);
    }
    let mut rng = SimRng::new(3);
    for _ in 0..2000 {
        let len = rng.range(0, 80) as usize;
        let mut junk: Vec<u8> = (0..len).map(|_| rng.range(0, 255) as u8).collect();
        if let Some(first) = junk.first_mut() {
            *first = 0;
        }
        let _ = b.handle_datagram(Instant::ZERO, &junk);
    }
    assert_eq!(b.members().count(), 0, "junk added a member");
    assert_eq!(
        b.stats().rejected,
        b.stats().received,
        "some junk was taken"
    );
    assert_eq!(
        b.handle_datagram(Instant::ZERO, &[9, 1, 2]),
        Err(MembershipError::NotMembership)
    );
    assert_eq!(
        b.handle_datagram(Instant::ZERO, &vec![0u8; 1201]),
        Err(MembershipError::TooLarge)
    );
    // And the intact datagram is taken: A becomes a member of B's view.
    assert_eq!(b.handle_datagram(Instant::ZERO, &d), Ok(()));
    assert!(matches!(b.poll_event(), Some(MemberEvent::Up(_))));
}

/// `docs/EXTENSIONS.md` §7.2's vector: the announce of `127.0.0.1:9000` (generation 0) to
/// `127.0.0.1:9001`, without a key and with the key of sixteen 0x07 bytes.
#[test]
fn announce_vector() {
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let (mut a, _) = pair(None, None);
    let plain = hex(&first_datagram(&mut a));
    let (mut a, _) = pair(ClusterKey::from_bytes(&[7; 16]).ok(), None);
    let keyed = hex(&first_datagram(&mut a));
    assert_eq!(plain, PLAIN);
    assert_eq!(keyed, KEYED);
}

const PLAIN: &str = "000053570e3132372e302e302e313a3930303000000e3132372e302e302e313a393030310006";
const KEYED: &str =
    "004053570e3132372e302e302e313a3930303000000e3132372e302e302e313a393030310006dcf18bf82070e074afc21893ad380200";
