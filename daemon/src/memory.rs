//! Giving memory back after a burst of load.
//!
//! glibc's malloc gives each thread that allocates its own arena (up to
//! 8 per core) and keeps freed memory in them: after a burst of large
//! request bodies on many tokio and blocking threads, berthd kept
//! 60–140 MB it no longer used. Two arenas are plenty for a daemon whose
//! hot paths are I/O, and a periodic `malloc_trim` returns the free pages
//! of every arena to the kernel once the burst is over.

use std::time::Duration;

/// How often free heap memory is handed back.
const TRIM_EVERY: Duration = Duration::from_secs(20);

/// glibc's `M_ARENA_MAX` mallopt parameter.
const M_ARENA_MAX: libc::c_int = -8;

/// Call first thing in main, before any thread exists.
pub fn limit_arenas() {
    // SAFETY: mallopt only sets a malloc tunable; no other thread runs yet.
    unsafe { libc::mallopt(M_ARENA_MAX, 2) };
}

/// Runs for the daemon's life: returns free heap pages to the kernel.
pub async fn trim_periodically() {
    let mut tick = tokio::time::interval(TRIM_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // malloc_trim walks every arena: keep it off the async workers.
        let _ = tokio::task::spawn_blocking(|| {
            // SAFETY: malloc_trim has no preconditions.
            unsafe { libc::malloc_trim(0) }
        })
        .await;
    }
}
