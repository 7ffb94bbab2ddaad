//! The C allocator's tuning for the long-running server, in one place (glibc only; other C
//! libraries have nothing to tune and these are no-ops).
//!
//! Why: glibc gives each thread that allocates concurrently its own arena (up to 8 × cores)
//! and keeps every arena's peak mapped, and it does not hand freed heap back to the system by
//! itself. A board answer on a 100k-task board allocates tens of MB for a moment, so
//! dashboard refreshes left `serve` at ~300 MB RSS (issue 14). [`bound_for_server`] caps the
//! arenas at two and fixes the mmap threshold (large buffers are mapped and unmapped instead
//! of growing the heap); [`release_free_memory`] returns free heap pages after a large answer.

/// Cap the arenas and fix the mmap threshold. Call once, before the server's threads start.
pub fn bound_for_server() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        // A fixed threshold also stops glibc raising it (up to 32 MB) after each large free,
        // which would put the next large buffer on the heap for good.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}

/// Give free heap pages back to the system (after a large answer has been sent). Costs a walk
/// of the heap, so call it after large answers only.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns unused pages; it is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}
