//! Container resource usage in dockerd's `ContainerStatsResponse` shape,
//! read from the container's cgroups (v1 controllers, or the unified v2
//! hierarchy on pure-v2 hosts), `/proc/stat` and the container's network
//! namespace.

mod cgroup;
mod render;

pub use cgroup::{machine_memory, sample, Sample};
pub use render::{render, zero};

#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the container's process {0} has no cgroup for {1}")]
    NoCgroup(i32, &'static str),
}

#[cfg(test)]
mod tests;
