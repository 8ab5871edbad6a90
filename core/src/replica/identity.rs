//! [`Identity`]: the entry id a node counts under, `name#incarnation`, on every platform.
//!
//! If a node's stored state were lost while its peers still held a higher entry for its id,
//! its new increments would be swallowed by the merge (per-entry max) until it caught up, and
//! lost for good if it never did. So a node counts under `name#incarnation`: the incarnation
//! is 8 random hex digits made when the node's store is new — or could not be restored — and
//! kept with the store. A node that lost its state counts under a new entry; the old one stays
//! in the cluster with everything it had, so the value stays exact. Reference nodes accept
//! such ids: they are strings.

use crate::id::{IdError, NodeId};

/// Hex digits of an incarnation.
pub const INCARNATION_LEN: usize = 8;

/// The entry id `name#incarnation`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Identity<const L: usize> {
    entry: NodeId<L>,
    name_len: usize,
}

/// How [`Identity::resume_or_fresh`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Incarnation {
    /// The stored identity, with the state stored beside it.
    Resumed,
    /// A new incarnation: it must be persisted before the first local write is acknowledged
    /// (the replica hands it out first, see `Replica::poll_persist`).
    Fresh,
}

impl<const L: usize> Identity<L> {
    /// `name#` followed by `incarnation` as 8 lowercase hex digits.
    pub fn new(name: &str, incarnation: u32) -> Result<Self, IdError> {
        let mut buf = [0u8; INCARNATION_LEN];
        for (i, b) in buf.iter_mut().enumerate() {
            let shift = 4 * (INCARNATION_LEN - 1 - i);
            let nibble = ((incarnation >> shift) & 0xf) as u8;
            *b = if nibble < 10 {
                b'0' + nibble
            } else {
                b'a' + nibble - 10
            };
        }
        let hex = core::str::from_utf8(&buf).map_err(|_| IdError::Empty)?;
        Self::join(name, hex)
    }

    /// A new incarnation of `name`, random from `rng`.
    pub fn fresh(name: &str, rng: &mut impl rand_core::RngCore) -> Result<Self, IdError> {
        Self::new(name, rng.next_u32())
    }

    /// Parses a stored entry id: `name#incarnation`, both parts non-empty.
    pub fn parse(entry: &str) -> Result<Self, IdError> {
        let (name, inc) = entry.rsplit_once('#').ok_or(IdError::Empty)?;
        if inc.is_empty() || inc.contains('#') {
            return Err(IdError::Empty);
        }
        Self::join(name, inc)
    }

    /// What a node starts with. It resumes the `stored` entry id when there is one, the
    /// state stored with it was restored, and `name` (the name it was asked to count under;
    /// `None`: whatever it counted under before) is that entry's name. Otherwise it starts a
    /// fresh incarnation of `name` (if `None`: of the stored name, else of `fallback`):
    /// - a store that could not be read must not let the node count under an entry its peers
    ///   may hold higher;
    /// - a renamed node counts under a new entry, and its old one stays as another node's.
    pub fn resume_or_fresh(
        name: Option<&str>,
        fallback: &str,
        stored: Option<&str>,
        state_restored: bool,
        rng: &mut impl rand_core::RngCore,
    ) -> Result<(Self, Incarnation), IdError> {
        let stored = stored.and_then(|s| Self::parse(s).ok());
        match stored {
            Some(id) if state_restored && name.is_none_or(|n| n == id.name()) => {
                Ok((id, Incarnation::Resumed))
            }
            _ => {
                let name = name.or(stored.as_ref().map(Self::name)).unwrap_or(fallback);
                Ok((Self::fresh(name, rng)?, Incarnation::Fresh))
            }
        }
    }

    fn join(name: &str, incarnation: &str) -> Result<Self, IdError> {
        if name.is_empty() {
            return Err(IdError::Empty);
        }
        let too_long = IdError::TooLong {
            len: name.len() + 1 + incarnation.len(),
            max: L,
        };
        let mut s: heapless::String<L> = heapless::String::new();
        s.push_str(name).map_err(|_| too_long)?;
        s.push('#').map_err(|_| too_long)?;
        s.push_str(incarnation).map_err(|_| too_long)?;
        Ok(Self {
            entry: NodeId::new(&s)?,
            name_len: name.len(),
        })
    }

    /// The entry id, `name#incarnation`.
    pub fn entry_id(&self) -> &NodeId<L> {
        &self.entry
    }

    /// The name part.
    pub fn name(&self) -> &str {
        self.entry.as_str().get(..self.name_len).unwrap_or_default()
    }

    /// The incarnation part.
    pub fn incarnation(&self) -> &str {
        self.entry
            .as_str()
            .get(self.name_len + 1..)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(u32);
    impl rand_core::RngCore for Fixed {
        fn next_u32(&mut self) -> u32 {
            self.0
        }
        fn next_u64(&mut self) -> u64 {
            u64::from(self.0)
        }
        fn fill_bytes(&mut self, dst: &mut [u8]) {
            dst.fill(0);
        }
    }

    #[test]
    fn formats_parses_and_splits() {
        let id = Identity::<64>::new("door", 0x0bad_f00d).unwrap();
        assert_eq!(id.entry_id().as_str(), "door#0badf00d");
        assert_eq!(id.name(), "door");
        assert_eq!(id.incarnation(), "0badf00d");
        assert_eq!(Identity::<64>::parse("door#0badf00d").unwrap(), id);
        // The last '#' splits: names may hold one.
        let p = Identity::<64>::parse("a#b#c1").unwrap();
        assert_eq!((p.name(), p.incarnation()), ("a#b", "c1"));
        assert!(Identity::<64>::parse("door").is_err());
        assert!(Identity::<64>::parse("door#").is_err());
        assert!(Identity::<64>::parse("#12").is_err());
        assert!(Identity::<8>::new("long-name", 1).is_err());
    }

    #[test]
    fn resumes_only_with_restored_state_and_the_same_name() {
        let stored = Some("door#00000001");
        let resume = |name, stored, restored, seed| {
            let (id, how) =
                Identity::<64>::resume_or_fresh(name, "dflt", stored, restored, &mut Fixed(seed))
                    .unwrap();
            (id.entry_id().as_str().to_owned(), how)
        };
        let resumed = ("door#00000001".to_owned(), Incarnation::Resumed);
        assert_eq!(resume(Some("door"), stored, true, 7), resumed);
        assert_eq!(
            resume(None, stored, true, 7),
            resumed,
            "no name asked: keep it"
        );
        let fresh = |id: &str| (id.to_owned(), Incarnation::Fresh);
        assert_eq!(
            resume(Some("door"), stored, false, 7),
            fresh("door#00000007")
        );
        assert_eq!(
            resume(Some("gate"), stored, true, 7),
            fresh("gate#00000007"),
            "renamed"
        );
        assert_eq!(resume(Some("door"), None, true, 9), fresh("door#00000009"));
        assert_eq!(resume(None, None, true, 9), fresh("dflt#00000009"));
        assert_eq!(
            resume(None, stored, false, 9),
            fresh("door#00000009"),
            "the stored name"
        );
        assert_eq!(
            resume(Some("door"), Some("corrupt"), true, 9).1,
            Incarnation::Fresh
        );
    }
}
