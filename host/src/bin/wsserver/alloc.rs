//! The binary's allocator: glibc's, except for small allocations aligned
//! to 128 bytes (tokio's task cells and I/O registrations: one of each per
//! connection at work), which go to mimalloc.
//!
//! glibc cuts an aligned allocation out of a larger chunk (size +
//! alignment + 32 B) and leaves the ends as fragments few later
//! allocations fit, and it gives a page back to the system only once
//! nothing on it is live. mimalloc keeps these allocations on pages of
//! their own size class, without slack, and returns a page once its blocks
//! are free: when idle connections park (their task and registration
//! freed), that memory leaves the process instead of staying as holes
//! between the records that live on. Everything else stays with glibc:
//! mimalloc for all of it cost the echo plugin's connections 450 B each
//! (bench/RESULTS.md).
//!
//! glibc's two size thresholds are fixed at start (see [`MMAP_THRESHOLD`]).

use std::alloc::{GlobalAlloc, Layout, System};

use libmimalloc_sys::{mi_option_set, mi_option_t};
use mimalloc::MiMalloc;

/// Alignment from which an allocation goes to mimalloc.
const ALIGNED: usize = 128;
/// Largest such allocation (a connection's task cell is 256 B).
const LARGEST: usize = 2048;

/// `mi_option_purge_delay` in mimalloc.h (v3): milliseconds before a
/// free page goes back to the system, 1000 by default (src/options.c).
const PURGE_DELAY: mi_option_t = 15;
/// `mi_option_allow_thp` in mimalloc.h (v3): whether mimalloc advises
/// transparent huge pages for its arena (`MADV_HUGEPAGE`), 1 by default.
const ALLOW_THP: mi_option_t = 43;

/// From this size on glibc maps an allocation on its own.
#[cfg(target_env = "gnu")]
const MMAP_THRESHOLD: i32 = 256 * 1024;
/// Free memory at the top of glibc's heap beyond this goes back to the
/// system.
///
/// glibc starts both at 128 KiB and raises them only when it frees a
/// mapped block, so whether they move depends on what the process
/// happened to free first. A pipelined 4 KiB echo fills and frees about
/// 110 KiB of reply chunks per 256 KiB read; in one start out of two the
/// thresholds stayed low, glibc gave that memory back and faulted it in
/// again on every read (440,000 page faults in 3 s), and the server
/// handled half the messages per CPU-second. Fixed here, it never does;
/// idle connections cost no more (bench/RESULTS.md, session 13).
#[cfg(target_env = "gnu")]
const TRIM_THRESHOLD: i32 = 512 * 1024;

pub struct SplitAllocator;

/// Free pages go back at once, and stay 4 KiB pages. A delayed purge runs
/// only on a later call into mimalloc from the same thread, and once its
/// connections have parked a thread makes none: their memory would stay.
/// With huge pages advised, the kernel's khugepaged later fills a 2 MiB
/// range of the arena in the background (seen as 2-3 MiB of RSS appearing
/// while 10,000 parked connections sat idle, in one run out of two).
/// Must run before the first allocation mimalloc serves: the arena is
/// advised when it is mapped.
#[allow(unsafe_code)]
pub fn configure() {
    // SAFETY: plain calls of mimalloc's option API.
    unsafe {
        mi_option_set(PURGE_DELAY, 0);
        mi_option_set(ALLOW_THP, 0);
    }
    #[cfg(target_env = "gnu")]
    configure_glibc();
}

/// Sets glibc's thresholds; false if glibc refused one.
#[cfg(target_env = "gnu")]
#[allow(unsafe_code)]
fn configure_glibc() -> bool {
    // SAFETY: plain calls of glibc's mallopt, with values it accepts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    }
}

/// An option's value in force.
#[cfg(test)]
#[allow(unsafe_code)]
fn option(option: mi_option_t) -> std::ffi::c_long {
    // SAFETY: a plain call of mimalloc's option API.
    unsafe { libmimalloc_sys::mi_option_get(option) }
}

fn to_mimalloc(layout: Layout) -> bool {
    layout.align() >= ALIGNED && layout.size() <= LARGEST
}

// Each call goes to the allocator that `to_mimalloc` names for its layout;
// a block is always freed or resized by the allocator that made it, since
// deallocation and reallocation receive the layout it was made with.
#[allow(unsafe_code)]
// SAFETY: see above; both allocators uphold GlobalAlloc's contract.
unsafe impl GlobalAlloc for SplitAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe {
            if to_mimalloc(layout) {
                MiMalloc.alloc(layout)
            } else {
                System.alloc(layout)
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe {
            if to_mimalloc(layout) {
                MiMalloc.alloc_zeroed(layout)
            } else {
                System.alloc_zeroed(layout)
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees; the same layout
        // names the allocator that made the block.
        unsafe {
            if to_mimalloc(layout) {
                MiMalloc.dealloc(ptr, layout)
            } else {
                System.dealloc(ptr, layout)
            }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe {
            let new = Layout::from_size_align_unchecked(new_size, layout.align());
            match (to_mimalloc(layout), to_mimalloc(new)) {
                (false, false) => System.realloc(ptr, layout, new_size),
                (true, true) => MiMalloc.realloc(ptr, layout, new_size),
                // Crossing over: a new block from the other allocator.
                _ => {
                    let moved = self.alloc(new);
                    if !moved.is_null() {
                        std::ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                    moved
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_option_numbers_are_mimallocs() {
        // mimalloc's documented defaults: the option numbers are right.
        assert_eq!(option(PURGE_DELAY), 1000);
        assert_eq!(option(ALLOW_THP), 1);
        configure();
        assert_eq!(option(PURGE_DELAY), 0);
        assert_eq!(option(ALLOW_THP), 0);
    }

    #[cfg(target_env = "gnu")]
    #[test]
    fn glibc_takes_the_thresholds() {
        assert!(configure_glibc());
    }
}
