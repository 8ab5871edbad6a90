//! [`Slots`]: where the counter and the peer table keep their items.
//!
//! One algorithm, two ways to hold memory: a fixed-capacity `heapless::Vec<T, N>` (no heap,
//! microcontrollers) or, with the `alloc` feature, [`Growable`], a `Vec<T>` that grows on
//! demand up to a runtime bound (hosts: 65,536 entries without reserving them up front).

/// A store was full: the operation changed nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CapacityExceeded;

impl core::fmt::Display for CapacityExceeded {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("capacity exceeded")
    }
}

impl core::error::Error for CapacityExceeded {}

/// An ordered sequence of `T` with a maximum length.
pub trait Slots<T: Copy>: Default {
    /// The items.
    fn as_slice(&self) -> &[T];
    /// The items, mutably.
    fn as_mut_slice(&mut self) -> &mut [T];
    /// The most items this store will ever hold.
    fn max_len(&self) -> usize;
    /// Inserts `item` at `index` (≤ len), shifting later items right.
    fn try_insert(&mut self, index: usize, item: T) -> Result<(), CapacityExceeded>;
    /// Appends `extra` copies of `fill`; all or nothing.
    fn try_extend_fill(&mut self, extra: usize, fill: T) -> Result<(), CapacityExceeded>;
    /// Removes and returns the item at `index`, if there is one.
    fn remove(&mut self, index: usize) -> Option<T>;
    /// Shortens to `len` items.
    fn truncate(&mut self, len: usize);

    /// Heap bytes this store has reserved (0 for fixed stores).
    fn heap_bytes(&self) -> usize {
        0
    }

    /// Number of items.
    fn len(&self) -> usize {
        self.as_slice().len()
    }
    /// True when there are no items.
    fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }
    /// Appends one item.
    fn try_push(&mut self, item: T) -> Result<(), CapacityExceeded> {
        let len = self.len();
        self.try_insert(len, item)
    }
}

/// A store that holds nothing and takes no memory (a table a build does without).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoSlots;

impl<T: Copy> Slots<T> for NoSlots {
    fn as_slice(&self) -> &[T] {
        &[]
    }
    fn as_mut_slice(&mut self) -> &mut [T] {
        &mut []
    }
    fn max_len(&self) -> usize {
        0
    }
    fn try_insert(&mut self, _: usize, _: T) -> Result<(), CapacityExceeded> {
        Err(CapacityExceeded)
    }
    fn try_extend_fill(&mut self, extra: usize, _: T) -> Result<(), CapacityExceeded> {
        if extra == 0 {
            Ok(())
        } else {
            Err(CapacityExceeded)
        }
    }
    fn remove(&mut self, _: usize) -> Option<T> {
        None
    }
    fn truncate(&mut self, _: usize) {}
}

impl<T: Copy, const N: usize> Slots<T> for heapless::Vec<T, N> {
    fn as_slice(&self) -> &[T] {
        self
    }
    fn as_mut_slice(&mut self) -> &mut [T] {
        self
    }
    fn max_len(&self) -> usize {
        N
    }
    fn try_insert(&mut self, index: usize, item: T) -> Result<(), CapacityExceeded> {
        if index > self.len() {
            return Err(CapacityExceeded);
        }
        self.insert(index, item).map_err(|_| CapacityExceeded)
    }
    fn try_extend_fill(&mut self, extra: usize, fill: T) -> Result<(), CapacityExceeded> {
        let new_len = self.len().checked_add(extra).ok_or(CapacityExceeded)?;
        self.resize(new_len, fill).map_err(|_| CapacityExceeded)
    }
    fn remove(&mut self, index: usize) -> Option<T> {
        (index < self.len()).then(|| heapless::Vec::remove(self, index))
    }
    fn truncate(&mut self, len: usize) {
        heapless::Vec::truncate(self, len)
    }
}

#[cfg(feature = "alloc")]
pub use growable::Growable;

#[cfg(feature = "alloc")]
mod growable {
    use super::{CapacityExceeded, Slots};
    use alloc::vec::Vec;

    /// A heap `Vec<T>` that grows on demand up to `max_len` items (default 65,536, spec §7).
    #[derive(Clone, Debug)]
    pub struct Growable<T> {
        items: Vec<T>,
        max_len: usize,
    }

    /// Default bound of a [`Growable`]: the host entry limit of spec §7.
    pub const DEFAULT_MAX_LEN: usize = 65_536;

    impl<T> Growable<T> {
        /// An empty store holding at most `max_len` items.
        pub fn with_max_len(max_len: usize) -> Self {
            Self {
                items: Vec::new(),
                max_len,
            }
        }
        /// Heap bytes currently reserved.
        pub fn heap_bytes(&self) -> usize {
            self.items
                .capacity()
                .saturating_mul(core::mem::size_of::<T>())
        }
    }

    impl<T> Default for Growable<T> {
        fn default() -> Self {
            Self::with_max_len(DEFAULT_MAX_LEN)
        }
    }

    impl<T: Copy> Slots<T> for Growable<T> {
        fn heap_bytes(&self) -> usize {
            self.items
                .capacity()
                .saturating_mul(core::mem::size_of::<T>())
        }
        fn as_slice(&self) -> &[T] {
            &self.items
        }
        fn as_mut_slice(&mut self) -> &mut [T] {
            &mut self.items
        }
        fn max_len(&self) -> usize {
            self.max_len
        }
        fn try_insert(&mut self, index: usize, item: T) -> Result<(), CapacityExceeded> {
            if self.items.len() >= self.max_len || index > self.items.len() {
                return Err(CapacityExceeded);
            }
            self.items.insert(index, item);
            Ok(())
        }
        fn try_extend_fill(&mut self, extra: usize, fill: T) -> Result<(), CapacityExceeded> {
            let new_len = self
                .items
                .len()
                .checked_add(extra)
                .ok_or(CapacityExceeded)?;
            if new_len > self.max_len {
                return Err(CapacityExceeded);
            }
            self.items.resize(new_len, fill);
            Ok(())
        }
        fn remove(&mut self, index: usize) -> Option<T> {
            (index < self.items.len()).then(|| self.items.remove(index))
        }
        fn truncate(&mut self, len: usize) {
            self.items.truncate(len)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exercise<S: Slots<u32>>(mut s: S) {
        let max = s.max_len();
        for i in 0..max as u32 {
            s.try_push(i).unwrap();
        }
        assert_eq!(s.try_push(99), Err(CapacityExceeded));
        assert_eq!(s.try_extend_fill(1, 0), Err(CapacityExceeded));
        assert_eq!(s.len(), max);
        assert_eq!(s.remove(0), Some(0));
        assert_eq!(s.remove(max), None);
        s.try_insert(0, 7).unwrap();
        assert_eq!(s.as_slice()[0], 7);
        assert_eq!(s.try_insert(max + 5, 1), Err(CapacityExceeded));
        s.truncate(1);
        s.try_extend_fill(2, 5).unwrap();
        assert_eq!(s.as_slice(), &[7, 5, 5]);
    }

    #[test]
    fn fixed_store() {
        exercise(heapless::Vec::<u32, 4>::new());
    }

    #[cfg(feature = "alloc")]
    #[test]
    fn growable_store() {
        exercise(Growable::<u32>::with_max_len(4));
    }
}
