//! Per-step timings of a container operation at debug level, to see where
//! a `run` spends its time (`create`, `start`, exit clean-up, `remove`).

use std::time::Instant;

pub(super) struct Steps<'a> {
    op: &'static str,
    id: &'a str,
    last: Instant,
}

impl<'a> Steps<'a> {
    pub(super) fn new(op: &'static str, id: &'a str) -> Steps<'a> {
        Steps {
            op,
            id,
            last: Instant::now(),
        }
    }

    /// The same timing, logged under the container's ID once it has one.
    pub(super) fn with_id<'b>(self, id: &'b str) -> Steps<'b> {
        Steps {
            op: self.op,
            id,
            last: self.last,
        }
    }

    /// Logs the time since the previous step (or the start).
    pub(super) fn done(&mut self, step: &'static str) {
        let now = Instant::now();
        let ms = (now - self.last).as_secs_f64() * 1e3;
        self.last = now;
        tracing::debug!(op = self.op, step, id = self.id, ms, "container step");
    }
}
