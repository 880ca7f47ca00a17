//! Giving freed memory back to the operating system.
//!
//! glibc's allocator keeps what a burst freed (the first sync of thousands of ExternalSecrets
//! allocates and frees far more than the caches keep) in its arenas, so resident memory stays at
//! its peak. `malloc_trim` returns the free pages of every arena. Other allocators (musl's, in
//! the container image) return memory on their own; there this does nothing.

/// Returns the allocator's free pages to the operating system (glibc only).
#[allow(unsafe_code)]
pub fn return_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases pages the allocator holds free; it takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}
