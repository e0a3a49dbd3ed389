//! Test-only crash injection: with `BERTH_TEST_CRASH_AT=<point>` in its
//! environment, berthd kills itself with SIGKILL (as `kill -9` would) when
//! it reaches that point, so tests can check that restore converges from
//! every instant of create, start and remove. Unset (always, outside the
//! tests), [`reached`] does nothing.
//!
//! Points: `create:after-record`, `create:after-layer`, `start:after-marker`,
//! `start:after-mount`, `start:after-runtime-create`,
//! `start:after-runtime-start`, `remove:after-marker`,
//! `remove:after-layer`.

use std::sync::OnceLock;

pub const ENV: &str = "BERTH_TEST_CRASH_AT";

fn configured() -> Option<&'static str> {
    static AT: OnceLock<Option<String>> = OnceLock::new();
    AT.get_or_init(|| std::env::var(ENV).ok().filter(|v| !v.is_empty()))
        .as_deref()
}

/// Die here if the test asked for it.
pub fn reached(point: &str) {
    if configured() == Some(point) {
        tracing::warn!(point, "{ENV}: killing berthd here");
        // SAFETY: kill(2) on our own pid with a constant signal.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}
