//! SIGHUP: read daemon.json again and apply the settings dockerd reloads
//! (debug, log-level, labels, registry mirrors and insecure registries,
//! transfer limits, live-restore, shutdown-timeout, default-ulimits,
//! runtimes and default-runtime). A file that does not load is logged and
//! the settings in force stay. Other keys take effect at the next start.

use anyhow::{Context, Result};
use clap::{ArgMatches, FromArgMatches};
use std::sync::OnceLock;
use tracing_subscriber::{reload, EnvFilter, Registry};

use crate::config::{Config, Flags};
use crate::daemon::Daemon;
use crate::events::{Event, EventType};

pub type LogHandle = reload::Handle<EnvFilter, Registry>;

/// Set at start when the log level comes from the configuration (not from
/// BERTH_LOG / RUST_LOG, which win over it).
static LOG_HANDLE: OnceLock<LogHandle> = OnceLock::new();

pub fn set_log_handle(handle: LogHandle) {
    let _ = LOG_HANDLE.set(handle);
}

/// The filter for a configured level (tracing has no "fatal").
pub fn level_filter(level: &str) -> EnvFilter {
    EnvFilter::new(if level == "fatal" { "error" } else { level })
}

/// The command line berthd was started with, to read the file again the
/// same way.
pub struct Source {
    pub matches: ArgMatches,
    pub explicit_config: bool,
}

impl Source {
    pub fn load(&self) -> Result<Config> {
        let flags = Flags::from_arg_matches(&self.matches)?;
        Config::load(flags, self.explicit_config)
    }
}

/// Loads the configuration again and applies the reloadable keys.
pub fn reload(daemon: &Daemon, source: &Source) -> Result<()> {
    let new = source.load()?;
    let mut merged = (*daemon.config_now()).clone();
    merged.debug = new.debug;
    merged.log_level = new.log_level;
    merged.labels = new.labels;
    merged.insecure_registries = new.insecure_registries;
    merged.registry_mirrors = new.registry_mirrors;
    merged.max_concurrent_downloads = new.max_concurrent_downloads;
    merged.max_concurrent_uploads = new.max_concurrent_uploads;
    merged.max_download_attempts = new.max_download_attempts;
    merged.live_restore = new.live_restore;
    merged.shutdown_timeout = new.shutdown_timeout;
    merged.default_ulimits = new.default_ulimits;
    merged.runtimes = new.runtimes;
    merged.default_runtime = new.default_runtime;
    daemon
        .registry
        .set_config(crate::daemon::registry_config(&merged))
        .context("registry settings")?;
    if let Some(handle) = LOG_HANDLE.get() {
        if let Err(e) = handle.reload(level_filter(&merged.log_level)) {
            tracing::warn!(error = %e, "changing the log level");
        }
    }
    daemon
        .containers
        .set_live(&crate::containers::Settings::from_config(&merged));
    let event = reload_event(daemon, &merged);
    daemon.set_config(merged);
    daemon.events.publish(event);
    tracing::info!("configuration reloaded");
    Ok(())
}

/// dockerd's `daemon reload` event: the reloaded values as attributes.
fn reload_event(daemon: &Daemon, c: &Config) -> Event {
    let json = |v: &[String]| serde_json::to_string(v).unwrap_or_default();
    let runtimes: Vec<String> = c.runtimes.keys().cloned().collect();
    Event::new(EventType::Daemon, "reload", daemon.id.clone()).attrs([
        ("debug", c.debug.to_string()),
        ("labels", json(&c.labels)),
        ("insecure-registries", json(&c.insecure_registries)),
        ("registry-mirrors", json(&c.registry_mirrors)),
        (
            "max-concurrent-downloads",
            c.max_concurrent_downloads.to_string(),
        ),
        (
            "max-concurrent-uploads",
            c.max_concurrent_uploads.to_string(),
        ),
        ("max-download-attempts", c.max_download_attempts.to_string()),
        ("live-restore", c.live_restore.to_string()),
        ("shutdown-timeout", c.shutdown_timeout.to_string()),
        ("default-runtime", c.default_runtime.clone()),
        ("runtimes", runtimes.join(" ")),
        ("name", crate::host::facts().hostname.clone()),
    ])
}
