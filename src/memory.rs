//! Giving freed memory back to the operating system.
//!
//! glibc's allocator keeps what a burst freed (the first sync of thousands of ExternalSecrets
//! allocates and frees far more than the caches keep) in its arenas, so resident memory stays at
//! its peak. `malloc_trim` returns the free pages of every arena. Other allocators (musl's, in
//! the container image) return memory on their own; there this does nothing. The number of
//! arenas is capped too ([`limit_arenas`]).

/// Returns the allocator's free pages to the operating system (glibc only).
#[allow(unsafe_code)]
pub fn return_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases pages the allocator holds free; it takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The most malloc arenas glibc may create. By default it creates up to 8 per core, one for
/// each thread that meets contention, and memory freed in one arena is reused only by threads
/// of that arena: with 10,000 ExternalSecrets that cost about 9 MiB of resident memory (148 to
/// 139 MiB in `cargo bench --bench scale`). One arena saved more (127 MiB) but made the first
/// sync about 60% slower, as the runtime's threads then wait on one lock.
const ARENAS: i32 = 2;

/// Caps glibc's malloc arenas at [`ARENAS`], unless `MALLOC_ARENA_MAX` says otherwise (glibc
/// reads it itself). Call before any thread starts. Does nothing on other allocators.
#[allow(unsafe_code)]
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt sets an allocator parameter; it takes no pointers. M_ARENA_MAX is -8
        // in glibc's malloc.h.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, ARENAS);
        }
    }
}
