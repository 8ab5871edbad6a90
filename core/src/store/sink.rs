//! [`Sink`]: where an encoder writes — a caller's fixed buffer on boards, a `Vec` on hosts.

/// The sink had no room for what was put; what it holds is then incomplete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SinkFull;

impl core::fmt::Display for SinkFull {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("buffer full")
    }
}

impl core::error::Error for SinkFull {}

/// Takes encoded bytes in order.
pub trait Sink {
    /// Appends `bytes`, or fails without a partial promise of room.
    fn put(&mut self, bytes: &[u8]) -> Result<(), SinkFull>;
}

impl<T: Sink + ?Sized> Sink for &mut T {
    fn put(&mut self, bytes: &[u8]) -> Result<(), SinkFull> {
        (**self).put(bytes)
    }
}

/// A sink over a caller's buffer: [`SliceSink::len`] bytes written so far.
#[derive(Debug)]
pub struct SliceSink<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl<'b> SliceSink<'b> {
    /// An empty sink writing into `buf`.
    pub fn new(buf: &'b mut [u8]) -> Self {
        Self { buf, len: 0 }
    }

    /// Bytes written.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Nothing written yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// What was written.
    pub fn written(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }
}

impl Sink for SliceSink<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), SinkFull> {
        let end = self.len.checked_add(bytes.len()).ok_or(SinkFull)?;
        self.buf
            .get_mut(self.len..end)
            .ok_or(SinkFull)?
            .copy_from_slice(bytes);
        self.len = end;
        Ok(())
    }
}

#[cfg(any(feature = "alloc", test))]
impl Sink for alloc::vec::Vec<u8> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), SinkFull> {
        self.extend_from_slice(bytes);
        Ok(())
    }
}
