//! Reading queries and answers.

use super::{rtype, MdnsError, NAME_MAX, SERVICE};
use core::net::{Ipv4Addr, SocketAddrV4};

/// A peer an answer names: an instance of the service and where it gossips.
///
/// No `defmt::Format`: defmt formats `core::net` addresses only with a feature boards do
/// not enable; log the address as a string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Found {
    /// Its gossip address: the TXT `addr` of the instance, or else each A record of the
    /// SRV's host at the SRV's port.
    pub addr: SocketAddrV4,
    /// The records' TTL in seconds: 0 is a goodbye (the instance is leaving).
    pub ttl: u32,
}

/// Most SRV and A records one message is read for (more are ignored: an answer names one
/// instance, the cache of a busy responder a few).
const RECORDS: usize = 8;
/// Most compression pointers followed in one name.
const JUMPS: usize = 32;

fn u16_at(msg: &[u8], pos: usize) -> Result<u16, MdnsError> {
    let b = msg.get(pos..pos + 2).ok_or(MdnsError::Truncated)?;
    b.try_into()
        .map(u16::from_be_bytes)
        .map_err(|_| MdnsError::Truncated)
}

fn u32_at(msg: &[u8], pos: usize) -> Result<u32, MdnsError> {
    let b = msg.get(pos..pos + 4).ok_or(MdnsError::Truncated)?;
    b.try_into()
        .map(u32::from_be_bytes)
        .map_err(|_| MdnsError::Truncated)
}

/// A name read into a buffer: lower-case, dotted, no trailing dot.
struct Name {
    buf: [u8; NAME_MAX],
    len: usize,
}

impl Name {
    fn bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }
    fn is(&self, s: &str) -> bool {
        self.bytes().eq_ignore_ascii_case(s.as_bytes())
    }
    /// `LABEL.rest` for one non-empty label.
    fn is_under(&self, rest: &str) -> bool {
        let b = self.bytes();
        b.len() > rest.len() + 1
            && b.ends_with(rest.as_bytes())
            && b.get(b.len() - rest.len() - 1) == Some(&b'.')
            && !b
                .get(..b.len() - rest.len() - 1)
                .unwrap_or_default()
                .contains(&b'.')
    }
    fn hash(&self) -> u32 {
        crate::counter::origin_of(core::str::from_utf8(self.bytes()).unwrap_or_default())
            ^ (self.len as u32)
    }
}

/// Reads the name at `pos`; returns it and the position after it.
fn name(msg: &[u8], pos: usize) -> Result<(Name, usize), MdnsError> {
    let mut name = Name {
        buf: [0; NAME_MAX],
        len: 0,
    };
    let (mut p, mut after, mut jumps) = (pos, None, 0usize);
    loop {
        let b = *msg.get(p).ok_or(MdnsError::Truncated)?;
        match b & 0xC0 {
            0x00 if b == 0 => {
                return Ok((name, after.unwrap_or(p + 1)));
            }
            0x00 => {
                let n = usize::from(b);
                let label = msg.get(p + 1..p + 1 + n).ok_or(MdnsError::Truncated)?;
                let dot = usize::from(name.len > 0);
                let end = name.len + dot + n;
                if end > NAME_MAX {
                    return Err(MdnsError::BadName);
                }
                if let Some(d) = name.buf.get_mut(name.len).filter(|_| dot == 1) {
                    *d = b'.';
                }
                let out = name
                    .buf
                    .get_mut(name.len + dot..end)
                    .ok_or(MdnsError::BadName)?;
                for (o, c) in out.iter_mut().zip(label) {
                    *o = c.to_ascii_lowercase();
                }
                name.len = end;
                p += 1 + n;
            }
            0xC0 => {
                let target = usize::from(u16_at(msg, p)? & 0x3FFF);
                jumps += 1;
                if target >= p || jumps > JUMPS {
                    return Err(MdnsError::BadName);
                }
                after.get_or_insert(p + 2);
                p = target;
            }
            _ => return Err(MdnsError::BadName),
        }
    }
}

/// One resource record: its owner, type, TTL and where its data is.
struct Record {
    owner: Name,
    rtype: u16,
    ttl: u32,
    data: usize,
    data_len: usize,
}

/// The message's flags, its number of records (answers, authority and additional), and the
/// position after its questions.
fn header(msg: &[u8]) -> Result<(u16, u32, usize), MdnsError> {
    let flags = u16_at(msg, 2)?;
    let questions = u16_at(msg, 4)?;
    let mut records = 0u32;
    for at in [6, 8, 10] {
        records += u32::from(u16_at(msg, at)?);
    }
    let mut p = 12;
    for _ in 0..questions {
        let (_, next) = name(msg, p)?;
        p = next + 4;
    }
    if p > msg.len() {
        return Err(MdnsError::Truncated);
    }
    Ok((flags, records, p))
}

fn record(msg: &[u8], pos: usize) -> Result<(Record, usize), MdnsError> {
    let (owner, p) = name(msg, pos)?;
    let rtype = u16_at(msg, p)?;
    let ttl = u32_at(msg, p + 4)?;
    let data_len = usize::from(u16_at(msg, p + 8)?);
    let data = p + 10;
    if data + data_len > msg.len() {
        return Err(MdnsError::Truncated);
    }
    Ok((
        Record {
            owner,
            rtype,
            ttl,
            data,
            data_len,
        },
        data + data_len,
    ))
}

/// True when `msg` is a query with a question this instance answers: PTR (or ANY) for the
/// service, SRV/TXT/ANY for `LABEL._tally._tcp.local`, A/ANY for `LABEL.local`. Answers
/// (responses) are never questions for us.
pub fn asks_for(msg: &[u8], label: &str) -> Result<bool, MdnsError> {
    let flags = u16_at(msg, 2)?;
    let questions = u16_at(msg, 4)?;
    if flags & 0x8000 != 0 || (flags >> 11) & 0xF != 0 {
        return Ok(false);
    }
    let mut p = 12;
    let mut asked = false;
    for _ in 0..questions {
        let (q, next) = name(msg, p)?;
        let qtype = u16_at(msg, next)?;
        p = next + 4;
        // `LABEL.rest`, compared without case.
        let mine = |rest: &str| {
            let b = q.bytes();
            b.len() == label.len() + 1 + rest.len()
                && b.get(..label.len())
                    .is_some_and(|l| l.eq_ignore_ascii_case(label.as_bytes()))
                && b.get(label.len()) == Some(&b'.')
                && b.get(label.len() + 1..)
                    .is_some_and(|r| r.eq_ignore_ascii_case(rest.as_bytes()))
        };
        asked |= (q.is(SERVICE) && matches!(qtype, rtype::PTR | rtype::ANY))
            || (mine(SERVICE) && matches!(qtype, rtype::SRV | rtype::TXT | rtype::ANY))
            || (mine("local") && matches!(qtype, rtype::A | rtype::ANY));
    }
    Ok(asked)
}

/// Calls `found` for every instance of the service that the answer `msg` names with an
/// address (see [`Found`]). A query, or an answer about other services, finds nothing.
pub fn for_each_peer(msg: &[u8], mut found: impl FnMut(Found)) -> Result<(), MdnsError> {
    let (flags, records, mut p) = header(msg)?;
    if flags & 0x8000 == 0 {
        return Ok(());
    }
    // (owner, target, port, ttl) of SRVs; (owner, ip, ttl) of As; owners with a TXT addr.
    let mut srvs = heapless::Vec::<(u32, u32, u16, u32), RECORDS>::new();
    let mut hosts = heapless::Vec::<(u32, Ipv4Addr, u32), RECORDS>::new();
    let mut with_addr = heapless::Vec::<u32, RECORDS>::new();
    for _ in 0..records {
        let (r, next) = record(msg, p)?;
        p = next;
        let data = msg.get(r.data..r.data + r.data_len).unwrap_or_default();
        match r.rtype {
            rtype::TXT if r.owner.is_under(SERVICE) => {
                if let Some(addr) = txt_addr(data) {
                    found(Found { addr, ttl: r.ttl });
                    let _ = with_addr.push(r.owner.hash());
                }
            }
            rtype::SRV if r.owner.is_under(SERVICE) => {
                let port = u16_at(msg, r.data + 4)?;
                let (target, _) = name(msg, r.data + 6)?;
                let _ = srvs.push((r.owner.hash(), target.hash(), port, r.ttl));
            }
            rtype::A => {
                if let Ok(octets) = <[u8; 4]>::try_from(data) {
                    let _ = hosts.push((r.owner.hash(), Ipv4Addr::from(octets), r.ttl));
                }
            }
            _ => {}
        }
    }
    for (owner, target, port, ttl) in &srvs {
        if with_addr.contains(owner) {
            continue;
        }
        for (host, ip, a_ttl) in &hosts {
            if host == target {
                found(Found {
                    addr: SocketAddrV4::new(*ip, *port),
                    ttl: (*ttl).min(*a_ttl),
                });
            }
        }
    }
    Ok(())
}

/// The `addr=A.B.C.D:PORT` string of a TXT record's data, if any.
fn txt_addr(mut data: &[u8]) -> Option<SocketAddrV4> {
    while let Some((&n, rest)) = data.split_first() {
        let s = rest.get(..usize::from(n))?;
        data = rest.get(usize::from(n)..)?;
        if let Some(v) = s.strip_prefix(b"addr=") {
            if let Some(a) = core::str::from_utf8(v).ok().and_then(|v| v.parse().ok()) {
                return Some(a);
            }
        }
    }
    None
}
