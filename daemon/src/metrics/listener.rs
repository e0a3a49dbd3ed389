//! The endpoint's own TCP listener and its one route, `GET /metrics`.
//! The rules of the API's TCP listeners apply: TLS (and client
//! certificates with `tlsverify`) when configured, and without TLS only a
//! loopback address unless `--tls=false` was given.

use anyhow::{bail, Context, Result};
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::engine;
use crate::config::Config;
use crate::daemon::AppState;
use crate::server::Listener;

/// Opens `metrics-addr`, if set (inside the async runtime).
pub fn bind(config: &Config) -> Result<Option<Listener>> {
    let Some(addr) = &config.metrics_addr else {
        return Ok(None);
    };
    let tls = match &config.tls {
        Some(settings) => Some(
            crate::tls::acceptor(settings).context("setting up TLS for the metrics endpoint")?,
        ),
        None => None,
    };
    let std_listener =
        std::net::TcpListener::bind(addr).with_context(|| format!("serving metrics on {addr}"))?;
    let local = std_listener
        .local_addr()
        .context("address of the metrics listener")?;
    if tls.is_none() && !local.ip().is_loopback() {
        if !config.tls_disabled_explicitly {
            bail!(
                "refusing to serve metrics on {local} without TLS; \
                 use a loopback address, configure TLS (--tlsverify …), or pass --tls=false"
            );
        }
        tracing::warn!(%local, "serving metrics on {local} without TLS (--tls=false)");
    }
    std_listener.set_nonblocking(true)?;
    Ok(Some(Listener::Tcp {
        listener: tokio::net::TcpListener::from_std(std_listener)?,
        tls,
    }))
}

/// The endpoint's HTTP service.
pub fn service(daemon: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(daemon)
}

async fn metrics(State(daemon): State<AppState>) -> impl IntoResponse {
    let counts = daemon.reports.container_counts();
    let containers = daemon.containers.clone();
    // /proc probes per container: off the async workers.
    let shims = tokio::task::spawn_blocking(move || {
        containers
            .all()
            .iter()
            .filter(|c| containers.shim(&c.id).is_alive())
            .count() as u64
    })
    .await
    .unwrap_or(0);
    let text = engine::render(&engine::State {
        running: counts.running,
        paused: counts.paused,
        stopped: counts.stopped,
        shims,
        transferred: berth_distribution::transferred(),
    });
    ([(CONTENT_TYPE, engine::CONTENT_TYPE)], text)
}
