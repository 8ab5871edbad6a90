//! Writing the query and the announcement.

use super::{rtype, MdnsError, CLASS_FLUSH, CLASS_IN, LABEL_MAX};
use core::fmt::Write as _;
use core::net::SocketAddrV4;

/// This node as an instance of the service.
#[derive(Clone, Copy, Debug)]
pub struct Instance<'a> {
    /// The instance label (see [`super::instance_label`]); also the host label (`LABEL.local`).
    pub label: &'a str,
    /// The node id, in TXT `id`.
    pub id: &'a str,
    /// Where it gossips: TXT `addr`, the SRV port and the A record.
    pub addr: SocketAddrV4,
    /// Record TTL in seconds; 0 is the goodbye (RFC 6762 §10.1).
    pub ttl: u32,
}

struct Out<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl Out<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), MdnsError> {
        let end = self
            .len
            .checked_add(bytes.len())
            .ok_or(MdnsError::TooLong)?;
        self.buf
            .get_mut(self.len..end)
            .ok_or(MdnsError::TooLong)?
            .copy_from_slice(bytes);
        self.len = end;
        Ok(())
    }
    fn u16(&mut self, v: u16) -> Result<(), MdnsError> {
        self.put(&v.to_be_bytes())
    }
    fn label(&mut self, l: &str) -> Result<(), MdnsError> {
        let n = u8::try_from(l.len())
            .ok()
            .filter(|n| (1..=LABEL_MAX as u8).contains(n))
            .ok_or(MdnsError::TooLong)?;
        self.put(&[n])?;
        self.put(l.as_bytes())
    }
    /// A compression pointer to `offset`.
    fn pointer(&mut self, offset: usize) -> Result<(), MdnsError> {
        let o = u16::try_from(offset)
            .ok()
            .filter(|o| *o < 0x4000)
            .ok_or(MdnsError::TooLong)?;
        self.u16(0xC000 | o)
    }
    /// Type, class, TTL and a placeholder length; returns where the length goes.
    fn record_head(&mut self, rtype: u16, class: u16, ttl: u32) -> Result<usize, MdnsError> {
        self.u16(rtype)?;
        self.u16(class)?;
        self.put(&ttl.to_be_bytes())?;
        let at = self.len;
        self.u16(0)?;
        Ok(at)
    }
    /// Writes the record data length at `at` (everything after it).
    fn record_end(&mut self, at: usize) -> Result<(), MdnsError> {
        let n = self.len - at - 2;
        let n = u16::try_from(n).map_err(|_| MdnsError::TooLong)?;
        self.buf
            .get_mut(at..at + 2)
            .ok_or(MdnsError::TooLong)?
            .copy_from_slice(&n.to_be_bytes());
        Ok(())
    }
    fn service(&mut self) -> Result<(), MdnsError> {
        self.label("_tally")?;
        self.label("_tcp")?;
        self.label("local")?;
        self.put(&[0])
    }
    fn header(&mut self, flags: u16, questions: u16, answers: u16) -> Result<(), MdnsError> {
        self.u16(0)?; // id: 0 in multicast mDNS (RFC 6762 §18.1)
        self.u16(flags)?;
        self.u16(questions)?;
        self.u16(answers)?;
        self.u16(0)?;
        self.u16(0)
    }
}

/// Writes a query for the service's instances (PTR `_tally._tcp.local.`) into `buf`; returns
/// its length.
pub fn write_query(buf: &mut [u8]) -> Result<usize, MdnsError> {
    let mut out = Out { buf, len: 0 };
    out.header(0, 1, 0)?;
    out.service()?;
    out.u16(rtype::PTR)?;
    out.u16(CLASS_IN)?;
    Ok(out.len)
}

/// Writes the announcement of `me` — PTR, SRV, TXT (`id=`, `addr=`) and A, names compressed —
/// into `buf`; returns its length. It is also the answer to a query that [`super::asks_for`]
/// us, and with `ttl` 0 the goodbye.
pub fn write_announcement(me: &Instance<'_>, buf: &mut [u8]) -> Result<usize, MdnsError> {
    let mut out = Out { buf, len: 0 };
    // A response, authoritative (RFC 6762 §18.2, §18.4).
    out.header(0x8400, 0, 4)?;
    let service = out.len;
    out.service()?;
    // PTR: the service → the instance (a shared record: no cache flush).
    let at = out.record_head(rtype::PTR, CLASS_IN, me.ttl)?;
    let instance = out.len;
    out.label(me.label)?;
    out.pointer(service)?;
    out.record_end(at)?;
    // SRV: the instance → port and host.
    out.pointer(instance)?;
    let at = out.record_head(rtype::SRV, CLASS_IN | CLASS_FLUSH, me.ttl)?;
    out.u16(0)?; // priority
    out.u16(0)?; // weight
    out.u16(me.addr.port())?;
    let host = out.len;
    out.label(me.label)?;
    out.label("local")?;
    out.put(&[0])?;
    out.record_end(at)?;
    // TXT: id and addr.
    out.pointer(instance)?;
    let at = out.record_head(rtype::TXT, CLASS_IN | CLASS_FLUSH, me.ttl)?;
    txt(&mut out, format_args!("id={}", me.id))?;
    txt(&mut out, format_args!("addr={}", me.addr))?;
    out.record_end(at)?;
    // A: the host → its address.
    out.pointer(host)?;
    let at = out.record_head(rtype::A, CLASS_IN | CLASS_FLUSH, me.ttl)?;
    out.put(&me.addr.ip().octets())?;
    out.record_end(at)?;
    Ok(out.len)
}

/// One TXT string (at most 255 bytes).
fn txt(out: &mut Out<'_>, args: core::fmt::Arguments<'_>) -> Result<(), MdnsError> {
    let mut s = heapless::String::<255>::new();
    s.write_fmt(args).map_err(|_| MdnsError::TooLong)?;
    let n = u8::try_from(s.len()).map_err(|_| MdnsError::TooLong)?;
    out.put(&[n])?;
    out.put(s.as_bytes())
}
