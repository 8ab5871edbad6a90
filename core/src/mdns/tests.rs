use super::*;
use core::net::{Ipv4Addr, SocketAddrV4};

fn me(ttl: u32) -> Instance<'static> {
    Instance {
        label: "board-7f3a",
        id: "board#7f3a",
        addr: SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 9), 9000),
        ttl,
    }
}

fn peers(msg: &[u8]) -> Vec<Found> {
    let mut out = Vec::new();
    for_each_peer(msg, |f| out.push(f)).unwrap();
    out
}

#[test]
fn the_query_is_a_ptr_question_for_the_service() {
    let mut buf = [0u8; 64];
    let n = write_query(&mut buf).unwrap();
    let want: &[u8] = b"\0\0\0\0\0\x01\0\0\0\0\0\0\x06_tally\x04_tcp\x05local\0\0\x0c\0\x01";
    assert_eq!(&buf[..n], want);
    assert!(asks_for(&buf[..n], "anyone").unwrap());
    // A query is no answer.
    assert!(peers(&buf[..n]).is_empty());
}

#[test]
fn an_announcement_names_the_instance_and_its_address() {
    let mut buf = [0u8; 512];
    let n = write_announcement(&me(TTL), &mut buf).unwrap();
    assert_eq!(
        peers(&buf[..n]),
        [Found {
            addr: "10.77.0.9:9000".parse().unwrap(),
            ttl: 120
        }]
    );
    // Its goodbye: the same records with TTL 0.
    let n = write_announcement(&me(0), &mut buf).unwrap();
    assert_eq!(peers(&buf[..n])[0].ttl, 0);
    // An answer is no question.
    assert!(!asks_for(&buf[..n], "board-7f3a").unwrap());
    // Too small a buffer is an error, at every length.
    for len in 0..n {
        assert_eq!(
            write_announcement(&me(0), &mut buf[..len]),
            Err(MdnsError::TooLong)
        );
    }
}

/// A minimal DNS message writer for answers this module does not write itself.
struct Msg(Vec<u8>);
impl Msg {
    fn new(flags: u16, questions: u16, records: u16) -> Self {
        let mut v = vec![0, 0];
        for x in [flags, questions, records, 0, 0] {
            v.extend_from_slice(&x.to_be_bytes());
        }
        Msg(v)
    }
    fn name(&mut self, dotted: &str) -> &mut Self {
        for l in dotted.split('.') {
            self.0.push(l.len() as u8);
            self.0.extend_from_slice(l.as_bytes());
        }
        self.0.push(0);
        self
    }
    fn u16(&mut self, x: u16) -> &mut Self {
        self.0.extend_from_slice(&x.to_be_bytes());
        self
    }
    fn record(&mut self, owner: &str, rtype: u16, data: &[u8]) -> &mut Self {
        self.name(owner).u16(rtype).u16(1);
        self.0.extend_from_slice(&60u32.to_be_bytes());
        self.u16(data.len() as u16);
        self.0.extend_from_slice(data);
        self
    }
}

#[test]
fn without_a_txt_addr_the_srv_host_and_its_a_records_are_used() {
    // mdns-sd style: SRV to a host, the host's A records in the additional section (upper
    // case on the wire: names compare case-insensitively), and an instance of another service.
    let mut srv = vec![0, 0, 0, 0, 0x23, 0x29]; // port 9001
    srv.extend_from_slice(b"\x02N2\x05LOCAL\0");
    let mut m = Msg::new(0x8400, 0, 5);
    m.record("n2._tally._tcp.local", 33, &srv)
        .record("n2._tally._tcp.local", 16, b"\x04id=x")
        .record("n2.local", 1, &[10, 1, 0, 2])
        .record("n2.local", 1, &[10, 1, 0, 3])
        .record("web._http._tcp.local", 33, &srv);
    let got: Vec<String> = peers(&m.0).iter().map(|f| f.addr.to_string()).collect();
    assert_eq!(got, ["10.1.0.2:9001", "10.1.0.3:9001"]);
}

#[test]
fn questions_for_us_and_for_others() {
    let q = |name: &str, t: u16| {
        let mut m = Msg::new(0, 1, 0);
        m.name(name).u16(t).u16(0x8001); // QU bit set: still a question
        m.0
    };
    assert!(asks_for(&q("board-7f3a._tally._tcp.local", 33), "board-7f3a").unwrap());
    assert!(asks_for(&q("BOARD-7F3A.local", 1), "board-7f3a").unwrap());
    assert!(asks_for(&q("_tally._tcp.local", 255), "board-7f3a").unwrap());
    assert!(!asks_for(&q("other._tally._tcp.local", 33), "board-7f3a").unwrap());
    assert!(!asks_for(&q("board-7f3ab.local", 1), "board-7f3a").unwrap());
    assert!(!asks_for(&q("_http._tcp.local", 12), "board-7f3a").unwrap());
    assert!(!asks_for(&q("_tally._tcp.local", 1), "board-7f3a").unwrap());
}

#[test]
fn malformed_messages_are_errors_not_panics() {
    let mut buf = [0u8; 512];
    let n = write_announcement(&me(TTL), &mut buf).unwrap();
    for len in 0..n {
        assert!(for_each_peer(&buf[..len], |_| {}).is_err(), "cut at {len}");
    }
    // A pointer to itself, and one pointing forwards.
    let mut m = Msg::new(0x8400, 0, 1);
    m.0.extend_from_slice(&[0xC0, 12]);
    assert_eq!(for_each_peer(&m.0, |_| {}), Err(MdnsError::BadName));
    let mut m = Msg::new(0x8400, 0, 1);
    m.0.extend_from_slice(&[0xC0, 40]);
    assert_eq!(for_each_peer(&m.0, |_| {}), Err(MdnsError::BadName));
    // A name longer than 255 bytes through a pointer loop of labels.
    let mut m = Msg::new(0x8400, 0, 1);
    m.0.extend_from_slice(&[5, b'a', b'b', b'c', b'd', b'e', 0xC0, 12]);
    assert_eq!(for_each_peer(&m.0, |_| {}), Err(MdnsError::BadName));
    // A reserved label type.
    let mut m = Msg::new(0x8400, 0, 1);
    m.0.push(0x40);
    assert_eq!(for_each_peer(&m.0, |_| {}), Err(MdnsError::BadName));
    assert_eq!(asks_for(&[0; 3], "x"), Err(MdnsError::Truncated));
}

#[test]
fn instance_labels_are_dns_safe() {
    assert_eq!(instance_label("board#7f3a").as_str(), "board-7f3a");
    assert_eq!(instance_label("10.0.0.1:9000").as_str(), "10-0-0-1-9000");
    assert_eq!(instance_label("").as_str(), "tally");
    assert_eq!(instance_label(&"x".repeat(100)).len(), 63);
}
