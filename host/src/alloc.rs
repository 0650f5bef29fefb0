//! The allocator of every binary that links the server (the server, its
//! tests and benches measure the same), and how long it keeps freed memory.

/// mimalloc: the engine thread allocates an element per candle update and
/// the streams free them on other threads (glibc's free paths were an eighth
/// of the engine thread's time).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc 3's `mi_option_e` (libmimalloc-sys
/// 0.1.49, pinned by Cargo.lock, names no constant for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Freed memory is never handed back to the system (mimalloc 3 purges
/// freed ranges after 1 s by default: `-1` turns that off), so it is there
/// for the next allocation of its size.
///
/// Every checkpoint lifts the whole state out of a component into a fresh
/// buffer (about 150 MB for a day of 900 products) while the last one is
/// freed. Purged in between, each checkpoint faulted its buffer in again,
/// page by page. When the export ran on the engine's thread, that held the
/// engine 720-830 ms every 6-10 s at 100k trades/s instead of 60-80 ms
/// (`cargo bench -p spot-host --bench pipeline -- --rates 100000
/// --stored-hours 24`: p99 590-640 ms). Built on a checkpoint thread since,
/// the faults still cost the machine: the same bench at 100k / 150k gave
/// p99 52-55 / 92-99 ms and 107-122% of a core for the server when purged,
/// 32-36 / 38-41 ms and 94-102% when kept (the thread at the streams'
/// priority then). A delay instead of never did not
/// do it (6 s: 717-737 ms on the engine's thread): an arena purges every
/// range due at its earliest expiry, so a range freed just before it goes
/// at once.
///
/// The cost: the process keeps its high-water mark (the pipeline bench's
/// RSS with a day stored: 1,480 MB against 1,353-1,373 MB).
const PURGE_DELAY_MS: std::ffi::c_long = -1;

/// Keep freed memory for reuse (the server calls it as it starts).
pub fn keep_freed_memory() {
    // SAFETY: sets a numeric option of the allocator linked above; mimalloc
    // reads it whenever it would schedule a purge.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) }
}
