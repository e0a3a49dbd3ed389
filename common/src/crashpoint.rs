//! Test-only crash injection: with `BERTH_TEST_CRASH_AT=<point>` in its
//! environment, a berth program kills itself with SIGKILL (as `kill -9`
//! would) when it reaches that point, so tests can check that recovery
//! converges from every instant of an operation. Unset (always, outside
//! the tests), [`reached`] does nothing.

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
        // stderr rather than tracing: this crate does not log, and the
        // tests look for the point's name in the daemon's output.
        eprintln!("{ENV}: killing the process at {point}");
        // SAFETY: kill(2) on our own pid with a constant signal.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}
