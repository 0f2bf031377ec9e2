//! The memory backend. Bytes live in the bucket's index itself (`Bytes`, shared cheaply
//! with readers), so publishing, deleting and aborting are index updates the façade does;
//! what is left for this part is receiving a body.
use bytes::{Bytes, BytesMut};

/// A body being received into RAM.
pub(super) struct Buffer(BytesMut);

impl Buffer {
    /// Memory grows as bytes arrive: a declared length reserves at most 64 KiB, so that a
    /// header alone cannot make the server reserve gigabytes.
    pub(super) fn new(size_hint: u64) -> Buffer {
        Buffer(BytesMut::with_capacity(size_hint.min(64 << 10) as usize))
    }

    pub(super) fn write(&mut self, data: &[u8]) {
        self.0.extend_from_slice(data);
    }

    pub(super) fn finish(self) -> Bytes {
        self.0.freeze()
    }

    #[cfg(test)]
    pub(super) fn capacity(&self) -> usize {
        self.0.capacity()
    }
}
