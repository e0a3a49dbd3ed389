//! Test-only crash injection (see [`berth_common::crashpoint`]): berthd
//! kills itself with SIGKILL at the point named by `BERTH_TEST_CRASH_AT`.
//!
//! Points: `create:after-record`, `create:after-layer`, `start:after-marker`,
//! `start:after-mount`, `start:after-runtime-create`,
//! `start:after-runtime-start`, `stop:after-signal`, `remove:after-marker`,
//! `remove:after-layer`, `remove:behind-answer` (after the answer),
//! `commit:after-pause`, `commit:after-diff`; in the
//! image store: `image:after-layer` (commit, load, import),
//! `image:after-record`, `load:after-spool`.

pub use berth_common::crashpoint::reached;
