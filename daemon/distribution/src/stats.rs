//! Layer bytes moved from and to registries since berthd started, for the
//! daemon's metrics.

use std::sync::atomic::{AtomicU64, Ordering};

static PULLED: AtomicU64 = AtomicU64::new(0);
static PUSHED: AtomicU64 = AtomicU64::new(0);

pub(crate) fn pulled(n: usize) {
    PULLED.fetch_add(n as u64, Ordering::Relaxed);
}

pub(crate) fn pushed(n: usize) {
    PUSHED.fetch_add(n as u64, Ordering::Relaxed);
}

/// Bytes of layers received by pulls and sent by pushes (retries included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Transferred {
    pub pulled: u64,
    pub pushed: u64,
}

pub fn transferred() -> Transferred {
    Transferred {
        pulled: PULLED.load(Ordering::Relaxed),
        pushed: PUSHED.load(Ordering::Relaxed),
    }
}
