//! HTTP API: one router per resource over the daemon backend.
