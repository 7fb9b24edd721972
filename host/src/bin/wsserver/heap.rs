//! How glibc's allocator gives memory back, tuned for the server.
//!
//! Messages cross threads: a plugin executor allocates the frames it
//! queues, and the connection's thread frees them once written. With
//! glibc's default, each thread's heap is trimmed as soon as 128 KiB lie
//! free at its top, so under load the same pages are given back and
//! faulted in again over and over (page faults were ~10% of the server's
//! CPU at 4 KiB echo through a plugin; `bench/RESULTS.md`). Keeping up to
//! 8 MiB free per heap stops that, at the price of that much memory not
//! returned to the system while idle.

/// Free bytes a heap keeps at its top before it is trimmed.
const TRIM_THRESHOLD: i32 = 8 << 20;

/// Applies the tuning; a no-op where the allocator is not glibc's.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    set_trim_threshold();
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn set_trim_threshold() {
    // SAFETY: mallopt only sets a parameter of the allocator; it is called
    // once at start, before any other thread exists.
    let applied = unsafe { libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) };
    if applied == 0 {
        eprintln!("wsserver: glibc refused M_TRIM_THRESHOLD; keeping its default");
    }
}
