//! Cache-line padding for shared state that several threads write.

/// Pads and aligns a value to 128 bytes, so that two of them never share a cache line (nor
/// the pair of lines an x86 prefetcher fetches together).
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}
