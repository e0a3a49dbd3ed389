//! berthd: the Docker Engine API daemon.

mod api;
mod containers;
mod daemon;
mod events;
mod volumes;

fn main() {}
