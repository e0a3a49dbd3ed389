//! The Prometheus endpoint (`metrics-addr`): engine figures in the
//! Prometheus text format, on a listener of its own.
//!
//! Subsystems record events through the functions re-exported here (one
//! set of metrics per process); figures that are state (containers by
//! state, live shims, bytes moved by the registry client) are read when
//! the endpoint is scraped.

mod engine;
mod listener;

pub use engine::{api_request, health_probe, route_label};
pub use listener::{bind, service};
