//! The named-counter Push (`docs/EXTENSIONS.md` §6): parse from `&[u8]`, emit into `&mut [u8]`,
//! without allocating.
//!
//! ```text
//! { "t": 18, "id": <sender id>, "c": { <name>: [[<entry id>, inc, dec, floor_inc, floor_dec], …], … } }
//! ```
//!
//! Names strictly ascending (bytewise), ids strictly ascending within a name, floors never above
//! their totals. Parsing validates everything first ([`NamedPush::parse`]); the cells are then
//! read lazily through [`NamedCells`], which cannot fail.

use super::map::Totals;
use super::name::CounterName;
use crate::error::WireError;
use crate::message::{check_id_len, open_message, set_once};
use crate::msgpack::{str_len, BufferTooSmall, Kind, Reader, Writer};

/// The message type (`t`) of a named-counter Push.
pub const NAMED_PUSH: u8 = 18;

/// Receiver limits on a named-counter Push.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct NamedLimits {
    /// Longest entry id (and sender id) accepted.
    pub max_id_len: usize,
    /// Most counters in one Push.
    pub max_counters: usize,
    /// Most cells in one Push, all counters together.
    pub max_cells: usize,
}

impl NamedLimits {
    /// Hosts: 255-byte ids, 10,000 counters, 65,536 cells.
    pub const HOST: NamedLimits = NamedLimits {
        max_id_len: 255,
        max_counters: 10_000,
        max_cells: 65_536,
    };
}

/// A validated named-counter Push.
#[derive(Clone, Debug)]
pub struct NamedPush<'a> {
    /// The sender's id.
    pub id: &'a str,
    /// Its cells, sorted by name then id.
    pub cells: NamedCells<'a>,
}

/// The cells of a parsed Push as `(name, entry id, totals)`, read lazily. Cloning is cheap.
#[derive(Clone, Debug)]
pub struct NamedCells<'a> {
    body: Reader<'a>,
    names_left: u32,
    cells_left: u32,
    name: &'a str,
}

impl<'a> Iterator for NamedCells<'a> {
    type Item = (&'a str, &'a str, Totals);

    fn next(&mut self) -> Option<Self::Item> {
        // Validated by `NamedPush::parse`: these reads succeed.
        while self.cells_left == 0 {
            if self.names_left == 0 {
                return None;
            }
            self.names_left -= 1;
            self.name = self.body.read_str().ok()?;
            self.cells_left = self.body.read_array_len().ok()?;
        }
        self.cells_left -= 1;
        let (id, totals) = read_cell(&mut self.body).ok()?;
        Some((self.name, id, totals))
    }
}

fn read_cell<'a>(r: &mut Reader<'a>) -> Result<(&'a str, Totals), WireError> {
    if r.peek_kind()? != Kind::Array || r.read_array_len()? != 5 {
        return Err(WireError::WrongType);
    }
    if r.peek_kind()? != Kind::Str {
        return Err(WireError::WrongType);
    }
    let id = r.read_str()?;
    let totals = Totals {
        inc: r.read_uint()?,
        dec: r.read_uint()?,
        floor_inc: r.read_uint()?,
        floor_dec: r.read_uint()?,
    };
    Ok((id, totals))
}

impl<'a> NamedPush<'a> {
    /// Parses and validates one message (no flag byte).
    pub fn parse(bytes: &'a [u8], limits: &NamedLimits) -> Result<Self, WireError> {
        let (mut r, pairs) = open_message(bytes)?;
        let (mut t, mut id, mut cells) = (None, None, None);
        for _ in 0..pairs {
            if r.peek_kind()? != Kind::Str {
                return Err(WireError::WrongType);
            }
            match r.read_str()? {
                "t" => {
                    let v = r.read_uint().map_err(|e| match e {
                        WireError::NotAnInteger => WireError::WrongType,
                        other => other,
                    })?;
                    set_once(&mut t, v)?
                }
                "id" => {
                    if r.peek_kind()? != Kind::Str {
                        return Err(WireError::WrongType);
                    }
                    set_once(&mut id, r.read_str()?)?
                }
                "c" => set_once(&mut cells, parse_cells(&mut r, limits)?)?,
                _ => r.skip_value()?,
            }
        }
        if !r.is_empty() {
            return Err(WireError::TrailingBytes);
        }
        if t.ok_or(WireError::MissingType)? != u64::from(NAMED_PUSH) {
            return Err(WireError::UnknownType);
        }
        let id = id.ok_or(WireError::MissingId)?;
        check_id(id, limits)?;
        let cells = cells.ok_or(WireError::EmptyPush)?;
        Ok(NamedPush { id, cells })
    }
}

fn check_id(id: &str, limits: &NamedLimits) -> Result<(), WireError> {
    check_id_len(id, limits.max_id_len)
}

/// Validates the `c` map at the reader's position and returns a lazy view of it.
fn parse_cells<'a>(r: &mut Reader<'a>, limits: &NamedLimits) -> Result<NamedCells<'a>, WireError> {
    if r.peek_kind()? != Kind::Map {
        return Err(WireError::WrongType);
    }
    let names = r.read_map_len()?;
    if names as usize > limits.max_counters {
        return Err(WireError::TooManyEntries);
    }
    let body = r.clone();
    let mut total = 0usize;
    let mut prev_name: Option<&str> = None;
    for _ in 0..names {
        if r.peek_kind()? != Kind::Str {
            return Err(WireError::WrongType);
        }
        let name = r.read_str()?;
        CounterName::new(name).map_err(|_| WireError::BadName)?;
        if prev_name.is_some_and(|p| p.as_bytes() >= name.as_bytes()) {
            return Err(WireError::BadName);
        }
        prev_name = Some(name);
        if r.peek_kind()? != Kind::Array {
            return Err(WireError::WrongType);
        }
        let n = r.read_array_len()?;
        if n == 0 {
            return Err(WireError::EmptyPush);
        }
        total = total.saturating_add(n as usize);
        if total > limits.max_cells {
            return Err(WireError::TooManyEntries);
        }
        let mut prev_id: Option<&str> = None;
        for _ in 0..n {
            let (id, t) = read_cell(r)?;
            check_id(id, limits)?;
            if prev_id.is_some_and(|p| p.as_bytes() >= id.as_bytes()) {
                return Err(WireError::BadName);
            }
            prev_id = Some(id);
            if t.floor_inc > t.inc || t.floor_dec > t.dec {
                return Err(WireError::Malformed);
            }
        }
    }
    if names == 0 {
        return Err(WireError::EmptyPush);
    }
    Ok(NamedCells {
        body,
        names_left: names,
        cells_left: 0,
        name: "",
    })
}

/// Writes a Push from `id` of `cells` (sorted by name then id, as
/// [`CounterMap::cells`](super::CounterMap::cells) gives them); returns the length written.
pub fn emit<'c, I>(id: &str, cells: I, buf: &mut [u8]) -> Result<usize, BufferTooSmall>
where
    I: Iterator<Item = (&'c str, &'c str, Totals)> + Clone,
{
    let mut w = Writer::new(buf);
    w.put(b"\x83\xa1t\xcc")?;
    w.put_u8(NAMED_PUSH)?;
    w.put(b"\xa2id")?;
    w.put_str(id)?;
    w.put(b"\xa1c")?;
    let mut names = 0usize;
    let mut last: Option<&str> = None;
    for (name, _, _) in cells.clone() {
        if last != Some(name) {
            names += 1;
            last = Some(name);
        }
    }
    w.put_map_len(names)?;
    let mut rest = cells.peekable();
    while let Some((name, _, _)) = rest.peek().copied() {
        let n = rest.clone().take_while(|(m, _, _)| *m == name).count();
        w.put_str(name)?;
        w.put_array_len(n)?;
        for (_, entry, t) in rest.by_ref().take(n) {
            w.put_u8(0x95)?;
            w.put_str(entry)?;
            for v in [t.inc, t.dec, t.floor_inc, t.floor_dec] {
                w.put_u64_full(v)?;
            }
        }
    }
    Ok(w.position())
}

/// Bytes of a Push from `id` besides its cells: `{t: 18, id: …, c: {…}}`, the map header
/// counted at its largest.
pub fn push_overhead(id: &str) -> usize {
    1 + 2 + 2 + 3 + str_len(id.len()) + 2 + 5
}

/// Bytes a cell of entry `entry` adds to a Push; `new_name` when it starts a counter's run
/// (its name and an array header, counted at its largest).
pub fn cell_cost(new_name: Option<&str>, entry: &str) -> usize {
    1 + str_len(entry.len()) + 4 * 9 + new_name.map_or(0, |n| str_len(n.len()) + 5)
}

/// How many of `cells` (sorted by name then id), from the first, a Push from `id` carries
/// within `budget` bytes.
pub fn fit<'c>(
    id: &str,
    cells: impl Iterator<Item = (&'c str, &'c str, Totals)>,
    budget: usize,
) -> usize {
    let mut used = push_overhead(id);
    let mut count = 0;
    let mut last: Option<&str> = None;
    for (name, entry, _) in cells {
        let cost = cell_cost((last != Some(name)).then_some(name), entry);
        if used + cost > budget {
            break;
        }
        used += cost;
        count += 1;
        last = Some(name);
    }
    count
}
