//! `POST /build` (the classic builder API `docker build` uses without
//! BuildKit) and `POST /build/prune`, over [`crate::build`].

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

use super::error::{ApiError, ApiResult};
use super::extract::QueryParams;
use super::stream::streaming_response;
use crate::build::{receive_context, remote_context, BuildError, BuildOptions, Message, Output};
use crate::daemon::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/build", post(build))
        .route("/build/prune", post(prune))
        .route("/build/cancel", post(cancel))
}

fn api_error(e: BuildError) -> ApiError {
    match e {
        BuildError::Invalid(m) => ApiError::bad_request(m),
        other => ApiError::internal(other.to_string()),
    }
}

/// A JSON object of strings (`buildargs`, `labels`); values may be null.
fn string_map(q: &QueryParams, key: &str) -> ApiResult<Vec<(String, Option<String>)>> {
    let Some(raw) = q.get(key).filter(|s| !s.trim().is_empty()) else {
        return Ok(Vec::new());
    };
    let map: Map<String, Value> = serde_json::from_str(raw)
        .map_err(|e| ApiError::bad_request(format!("invalid {key} parameter: {e}")))?;
    map.into_iter()
        .map(|(k, v)| match v {
            Value::Null => Ok((k, None)),
            Value::String(s) => Ok((k, Some(s))),
            other => Err(ApiError::bad_request(format!(
                "invalid {key} parameter: value of {k} must be a string, not {other}"
            ))),
        })
        .collect()
}

fn options(q: &QueryParams) -> ApiResult<BuildOptions> {
    let mut tags = Vec::new();
    for t in q.get_all("t").into_iter().filter(|t| !t.is_empty()) {
        let r = berth_images::Reference::parse_normalized(t)
            .map_err(|e| ApiError::bad_request(format!("invalid reference format: {e}")))?;
        if r.digest().is_some() {
            return Err(ApiError::bad_request(format!(
                "invalid reference format: {t}: a tag cannot contain a digest"
            )));
        }
        tags.push(r.with_default_tag());
    }
    let mut resources = Map::new();
    for (param, field) in [
        ("memory", "Memory"),
        ("memswap", "MemorySwap"),
        ("cpushares", "CpuShares"),
        ("cpuperiod", "CpuPeriod"),
        ("cpuquota", "CpuQuota"),
        ("shmsize", "ShmSize"),
    ] {
        if let Some(v) = q.i64(param)? {
            if v != 0 {
                resources.insert(field.into(), json!(v));
            }
        }
    }
    if let Some(c) = q.get("cpusetcpus").filter(|c| !c.is_empty()) {
        resources.insert("CpusetCpus".into(), json!(c));
    }
    let labels = string_map(q, "labels")?
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect();
    let network_mode = match q.get("networkmode").unwrap_or("") {
        "" | "default" | "bridge" => String::new(),
        m @ ("host" | "none") => m.to_owned(),
        other if other.starts_with("container:") => {
            return Err(ApiError::bad_request(format!(
                "network mode {other} is not supported for builds"
            )))
        }
        // A user network: resolved by the handler.
        other => other.to_owned(),
    };
    // Repeated (the CLI, docker-py) or comma-separated.
    let extra_hosts = q
        .get_all("extrahosts")
        .into_iter()
        .flat_map(|s| s.split(','))
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let cache_from = match q.get("cachefrom").filter(|s| !s.trim().is_empty()) {
        Some(raw) => serde_json::from_str::<Vec<String>>(raw)
            .map_err(|e| ApiError::bad_request(format!("invalid cachefrom parameter: {e}")))?,
        None => Vec::new(),
    };
    Ok(BuildOptions {
        tags,
        cache_from,
        registry_auth: Default::default(),
        quiet: q.bool("q"),
        no_cache: q.bool("nocache"),
        build_args: string_map(q, "buildargs")?,
        labels,
        target: q.get("target").unwrap_or("").to_owned(),
        dockerfile: q.get("dockerfile").unwrap_or("").to_owned(),
        network_mode,
        extra_hosts,
        resources,
    })
}

async fn build(
    State(state): State<AppState>,
    headers: HeaderMap,
    q: QueryParams,
    body: Body,
) -> ApiResult<Response> {
    let mut opts = options(&q)?;
    if !matches!(opts.network_mode.as_str(), "" | "host" | "none") {
        // As dockerd: the steps join a user network by its name or ID.
        let (_, name, _) = state.networks.resolve(&opts.network_mode)?;
        opts.network_mode = name;
    }
    if let Some(h) = headers.get("X-Registry-Config") {
        let h = h
            .to_str()
            .map_err(|_| ApiError::bad_request("invalid X-Registry-Config header"))?;
        opts.registry_auth = berth_distribution::AuthConfig::map_from_header(h)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
    }
    let quiet = opts.quiet;
    let started = std::time::Instant::now();
    let tmp = state.builder.tmp_dir();
    let ctx = match q.get("remote").filter(|r| !r.is_empty()) {
        Some(remote) => remote_context(remote, &opts.dockerfile, &tmp).await,
        None => receive_context(body, &tmp, state.builder.memory_dirs()).await,
    }
    .map_err(api_error)?;
    tracing::debug!(
        ms = ms_since(started),
        "build context received and extracted"
    );
    let builder = state.builder.clone();
    let prepared = tokio::task::spawn_blocking(move || builder.prepare(ctx, opts))
        .await
        .map_err(|e| ApiError::from_internal("build task", e))?
        .map_err(api_error)?;
    tracing::debug!(
        ms = ms_since(started),
        "build Dockerfile parsed and planned"
    );
    let registration = q
        .get("buildid")
        .filter(|id| !id.is_empty())
        .map(|id| state.builder.register(id));
    let (tx, resp) = streaming_response("application/json");
    let (mtx, mrx) = mpsc::channel::<Message>(64);
    let build = tokio::spawn(prepared.run(Output::new(mtx, quiet)));
    let builder = state.builder.clone();
    tokio::spawn(async move {
        relay(build, mrx, tx, registration).await;
        tracing::debug!(ms = ms_since(started), "build answer ended");
        // The answer has ended: the cache hits' usage figures are written
        // now, off the client's time.
        let _ = tokio::task::spawn_blocking(move || builder.flush_cache_usage()).await;
    });
    Ok(resp)
}

fn ms_since(t: std::time::Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// Sends the build's messages as JSON lines until it ends, then its error,
/// if any, as an `errorDetail` message.
async fn relay(
    build: tokio::task::JoinHandle<Result<String, BuildError>>,
    mut mrx: mpsc::Receiver<Message>,
    tx: super::stream::ChunkSender,
    registration: Option<crate::build::Registration>,
) {
    {
        let cancelled = registration.as_ref().map(|r| r.cancelled.clone());
        let cancel_requested = async {
            match &cancelled {
                Some(n) => n.notified().await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(cancel_requested);
        let mut by_request = false;
        loop {
            let m = tokio::select! {
                m = mrx.recv() => m,
                // The client left, or `POST /build/cancel` named this
                // build: dropping the receiver cancels it.
                _ = tx.closed() => None,
                _ = &mut cancel_requested => {
                    by_request = true;
                    None
                }
            };
            let Some(m) = m else { break };
            let mut line = serde_json::to_vec(&m.to_json()).unwrap_or_default();
            line.extend_from_slice(b"\r\n");
            if tx.send(line).await.is_err() {
                break;
            }
        }
        drop(mrx);
        let result = build.await;
        drop(registration);
        let err = match result {
            Ok(Ok(_)) => return,
            // The client is still there: it learns why its build ended,
            // in Go's words for a cancelled context, as dockerd says it.
            Ok(Err(BuildError::Cancelled)) if by_request => {
                tracing::info!("build cancelled by POST /build/cancel");
                BuildError::Step("context canceled".into())
            }
            Ok(Err(BuildError::Cancelled)) => {
                tracing::info!("build cancelled: the client went away");
                return;
            }
            Ok(Err(e)) => e,
            Err(e) => BuildError::Internal(format!("build task: {e}")),
        };
        tracing::info!(error = %err, "build failed");
        let msg = err.to_string();
        let detail = match &err {
            BuildError::Command { code, .. } => json!({ "code": code, "message": msg }),
            _ => json!({ "message": msg }),
        };
        let mut line =
            serde_json::to_vec(&json!({ "errorDetail": detail, "error": msg })).unwrap_or_default();
        line.extend_from_slice(b"\r\n");
        let _ = tx.send(line).await;
    }
}

async fn cancel(State(state): State<AppState>, q: QueryParams) -> ApiResult<StatusCode> {
    let id = q
        .get("id")
        .filter(|id| !id.is_empty())
        .ok_or_else(|| ApiError::bad_request("build ID not provided"))?;
    state.builder.cancel(id);
    Ok(StatusCode::OK)
}

async fn prune(
    State(state): State<AppState>,
    q: QueryParams,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let filters = q.filters()?;
    filters.validate(&[
        "until",
        "unused-for",
        "id",
        "parent",
        "type",
        "description",
        "inuse",
        "shared",
        "private",
    ])?;
    let mut older_than = None;
    for key in ["until", "unused-for"] {
        if let Some(v) = filters.get(key).first() {
            let t = berth_images::filters::parse_until(v)
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
            older_than = Some(t);
        }
    }
    let builder = state.builder.clone();
    let (ids, reclaimed) = tokio::task::spawn_blocking(move || builder.prune(older_than))
        .await
        .map_err(|e| ApiError::from_internal("build cache prune", e))?;
    Ok((
        StatusCode::OK,
        Json(json!({ "CachesDeleted": ids, "SpaceReclaimed": reclaimed })),
    ))
}
