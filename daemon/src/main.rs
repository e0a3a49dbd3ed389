//! berthd: the Docker Engine API daemon.

mod api;
mod build;
#[allow(dead_code)] // read by /info and the subsystems
mod config;
mod containers;
#[allow(dead_code)] // registration points used as subsystems land
mod daemon;
#[allow(dead_code)]
mod events;
mod fetch;
#[allow(dead_code)]
mod health;
mod host;
mod init;
mod instance;
mod memory;
mod metrics;
mod network;
mod private_dirs;
mod reload;
mod server;
mod systemd;
mod tls;
mod volumes;

use anyhow::{Context, Result};
use clap::{parser::ValueSource, CommandFactory, FromArgMatches};
use std::process::ExitCode;
use std::sync::Arc;

use config::{Config, Flags};

fn main() -> ExitCode {
    memory::limit_arenas();
    let matches = Flags::command().get_matches();
    let explicit_config = matches.value_source("config_file") == Some(ValueSource::CommandLine);
    let config = Flags::from_arg_matches(&matches)
        .map_err(anyhow::Error::from)
        .and_then(|flags| Config::load(flags, explicit_config));
    let config = match config.and_then(|c| validate_only(&c).map(|v| (c, v))) {
        Ok((_, true)) => {
            println!("configuration OK");
            return ExitCode::SUCCESS;
        }
        Ok((c, false)) => c,
        Err(e) => {
            eprintln!("berthd: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    init_logging(&config);
    raise_fd_limit();
    let source = reload::Source {
        matches,
        explicit_config,
    };
    match run(config, source) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("berthd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `--validate`: the configuration loaded (and its TLS files read); true
/// when berthd should stop there.
fn validate_only(config: &Config) -> anyhow::Result<bool> {
    if !config.validate {
        return Ok(false);
    }
    if let Some(tls) = &config.tls {
        tls::acceptor(tls).context("TLS settings")?;
    }
    Ok(true)
}

fn init_logging(config: &Config) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let from_env = tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_env("RUST_LOG"))
        .ok();
    let configured = from_env.is_none();
    let filter = from_env.unwrap_or_else(|| reload::level_filter(&config.log_level));
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let json = config.log_format == config::LogFormat::Json;
    let text_layer = (!json).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
    });
    // One flat object a line: time, level, message, the event's fields.
    let json_layer = json.then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(text_layer)
        .with(json_layer)
        .init();
    // A level from the environment is the operator's override: a reload
    // of the file does not change it.
    if configured {
        reload::set_log_handle(handle);
    }
}

/// One async worker per two CPUs (at least one); `TOKIO_WORKER_THREADS`
/// overrides it. The workers only move bytes between sockets and answer
/// from kept state (file system work and anything slow runs on blocking
/// threads), while the clients that talk to berthd, the shims and the
/// containers run on the same CPUs: a worker per CPU mostly bounces a
/// connection's work between CPUs the rest needs. Measured on 2 CPUs
/// against one worker per CPU, two runs each: the userland proxy's
/// requests/s +30-40% and its download +30-100%, `docker run` on the
/// bridge 43 and 35 against 55 and 48 ms; inspect, pulls and pushes no
/// different; the full list of 1000 containers -35% (one core copies the
/// 700 kB answers), still 75x dockerd's.
fn async_workers() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cpus / 2).max(1)
}

fn run(config: Config, source: reload::Source) -> Result<()> {
    private_dirs::prepare(&config.data_root, &config.exec_root)?;
    let _instance = instance::Instance::acquire(&config.data_root, &config.pidfile)?;
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        builder.worker_threads(async_workers());
    }
    let runtime = builder
        .enable_all()
        .thread_name("berthd")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let listeners = server::bind_all(&config)?;
        let metrics_listener = match metrics::bind(&config) {
            Ok(l) => l,
            Err(e) => {
                server::remove_socket_files(&listeners);
                return Err(e);
            }
        };
        let daemon = match daemon::Daemon::new(config) {
            Ok(d) => Arc::new(d),
            Err(e) => {
                server::remove_socket_files(&listeners);
                return Err(e);
            }
        };
        tracing::info!(
            version = api::system::SERVER_VERSION,
            data_root = %daemon.config.data_root.display(),
            "berthd started"
        );
        tokio::spawn(memory::trim_periodically());
        tokio::spawn(reload_on_sighup(daemon.clone(), source));
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let events = daemon.events.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            systemd::notify("STOPPING=1\nSTATUS=shutting down");
            events.shutdown();
            let _ = stop_tx.send(true);
        });
        if let Some(l) = metrics_listener {
            tokio::spawn(server::serve(
                "metrics",
                vec![l],
                metrics::service(daemon.clone()),
                stop_rx.clone(),
            ));
        }
        let serving: Vec<String> = listeners.iter().map(|l| l.describe()).collect();
        systemd::notify(&format!(
            "READY=1\nSTATUS=serving the API on {}",
            serving.join(", ")
        ));
        server::serve("API", listeners, api::service(daemon.clone()), stop_rx).await;
        shut_down_containers(&daemon).await;
        daemon.containers.release_cgroup_parent();
        // Build cache usage figures not written yet (they are written after
        // each build's answer, in the background).
        daemon.builder.flush_cache_usage();
        tracing::info!("berthd stopped");
        Ok::<_, anyhow::Error>(())
    })?;
    // Streams still open (events, hijacked attach) must not delay exit.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    Ok(())
}

/// Tree walks keep one fd per directory level and every connection holds
/// one: use the hard limit, as dockerd's unit does (LimitNOFILE=infinity).
fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!("raising the open file limit to {hard}: {e}");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("reading the open file limit: {e}"),
    }
}

/// SIGHUP: reload the configuration file; a broken one is logged and the
/// settings in force stay.
async fn reload_on_sighup(daemon: Arc<daemon::Daemon>, source: reload::Source) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot handle SIGHUP; configuration reload disabled");
            return;
        }
    };
    while hup.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading the configuration");
        systemd::reloading();
        let status = match reload::reload(&daemon, &source) {
            Ok(()) => "configuration reloaded".to_string(),
            Err(e) => {
                tracing::error!(
                    "error reloading the configuration, keeping the settings in force: {e:#}"
                );
                format!("configuration reload failed, old settings kept: {e:#}")
            }
        };
        systemd::notify(&format!("READY=1\nSTATUS={status}"));
    }
}

/// After the API has stopped: with live-restore the containers keep
/// running (their shims keep them); without, they are stopped, within
/// dockerd's shutdown timeout.
async fn shut_down_containers(daemon: &daemon::Daemon) {
    let config = daemon.config_now();
    let containers = &daemon.containers;
    containers.begin_shutdown();
    if config.live_restore {
        tracing::info!("live-restore: containers keep running");
        return;
    }
    let limit = containers.shutdown_timeout(config.shutdown_timeout);
    systemd::notify("STATUS=stopping containers");
    tracing::debug!(
        configured = config.shutdown_timeout,
        limit_secs = limit.map(|l| l.as_secs()),
        "stopping the running containers"
    );
    let stop = containers.stop_all_for_shutdown();
    match limit {
        None => {
            let n = stop.await;
            tracing::info!(stopped = n, "containers stopped");
        }
        Some(limit) => match tokio::time::timeout(limit, stop).await {
            Ok(n) => tracing::info!(stopped = n, "containers stopped"),
            Err(_) => tracing::error!(
                "containers did not stop within the shutdown timeout ({}s); forcing the shutdown",
                limit.as_secs()
            ),
        },
    }
}

/// SIGTERM or SIGINT.
async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop berthd with SIGKILL");
        return std::future::pending().await;
    };
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(signal = name, "shutting down");
}
