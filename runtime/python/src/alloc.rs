//! The process's Rust allocator: mimalloc for the many small blocks every
//! request allocates (its thread-local allocations cost far fewer instructions
//! than glibc's malloc), and the system's allocator for blocks of a mebibyte or
//! more (a large body, its parsed document). mimalloc keeps what it frees for
//! reuse: after one 10 MB body some 80 MiB stayed resident. glibc maps such
//! blocks on their own, unmaps them when they are freed, and grows them in
//! place (`mremap`) rather than by copying.

use std::alloc::{GlobalAlloc, Layout, System};

use mimalloc::MiMalloc;

/// Blocks at least this large go to the system's allocator.
const LARGE: usize = 1 << 20;

pub struct Allocator;

// SAFETY: each block is allocated, resized and freed by one of two allocators,
// chosen by its size; a caller frees a block with the layout it last had
// (GlobalAlloc's contract), so the choice is the same at each step, and a
// block crossing the threshold is moved from one to the other.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= LARGE {
            System.alloc(layout)
        } else {
            MiMalloc.alloc(layout)
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= LARGE {
            System.alloc_zeroed(layout)
        } else {
            MiMalloc.alloc_zeroed(layout)
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if layout.size() >= LARGE {
            System.dealloc(ptr, layout)
        } else {
            MiMalloc.dealloc(ptr, layout)
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        match (layout.size() >= LARGE, new_size >= LARGE) {
            (true, true) => System.realloc(ptr, layout, new_size),
            (false, false) => MiMalloc.realloc(ptr, layout, new_size),
            _ => {
                // SAFETY: the caller guarantees `new_size`, rounded up to the
                // alignment, does not overflow (GlobalAlloc::realloc's contract).
                let resized = Layout::from_size_align_unchecked(new_size, layout.align());
                let moved = self.alloc(resized);
                if !moved.is_null() {
                    std::ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size));
                    self.dealloc(ptr, layout);
                }
                moved
            }
        }
    }
}

// mimalloc's own setter (linked in with it; libmimalloc-sys declares it only
// with its `extended` feature, whose option numbers are those of mimalloc 2).
extern "C" {
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// `mi_option_purge_delay` in mimalloc 3's `mi_option_e` (mimalloc.h), the
/// version libmimalloc-sys builds without its `v2` feature.
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

/// Has both allocators give freed memory back to the system, for the serving
/// process. glibc maps every block of [`LARGE`] or more on its own, for good
/// (by default, once such a block is freed, it raises its threshold to that
/// size and serves later ones from heaps it keeps). mimalloc purges a freed
/// page at once rather than 10 ms later, when the thread next allocates: a
/// server gone idle after a thousand slow clients kept the 80 MiB their heads
/// took (measured with bench/slow_heads.py; throughput unchanged under oha).
pub fn give_freed_memory_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes a setting of the allocator.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, LARGE as libc::c_int);
    }
    // SAFETY: only changes a setting of the allocator, read when it purges.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
}
