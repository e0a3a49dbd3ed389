//! Local volumes.
