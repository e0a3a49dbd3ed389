//! A container's output and files: `GET /containers/{id}/logs`,
//! `/changes` and `/export`.

use std::io::{self, Write};
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use tokio::runtime::Handle;

use super::error::{ApiError, ApiResult};
use super::extract::QueryParams;
use super::stream::{stream_content_type, streaming_response, ChunkSender};
use super::version::ApiVersion;
use crate::containers::core::Container;
use crate::containers::logs::{self, LogRequest, Selection};
use crate::containers::record::Status;
use crate::containers::{changes, export};
use crate::daemon::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/containers/{id}/logs", get(container_logs))
        .route("/containers/{id}/changes", get(container_changes))
        .route("/containers/{id}/export", get(container_export))
}

fn lookup(state: &AppState, reference: &str) -> ApiResult<Arc<Container>> {
    state
        .containers
        .get(reference)
        .map_err(|e| ApiError::not_found(e.to_string()))
}

fn is_running(c: &Container) -> bool {
    matches!(
        c.status(),
        Status::Running | Status::Paused | Status::Restarting
    )
}

/// Feeds response chunks from a blocking thread.
struct BodySink {
    tx: ChunkSender,
    rt: Handle,
}

impl logs::Sink for BodySink {
    fn send(&mut self, chunk: Vec<u8>) -> bool {
        self.rt.block_on(self.tx.send(chunk)).is_ok()
    }

    fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

impl Write for BodySink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if logs::Sink::send(self, buf.to_vec()) {
            Ok(buf.len())
        } else {
            Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "client disconnected",
            ))
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

async fn container_logs(
    State(state): State<AppState>,
    Path(id): Path<String>,
    version: ApiVersion,
    q: QueryParams,
) -> ApiResult<Response> {
    let stdout = q.bool("stdout");
    let stderr = q.bool("stderr");
    if !stdout && !stderr {
        return Err(ApiError::bad_request(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let time = |key: &str| -> ApiResult<Option<i64>> {
        match q.get(key).filter(|v| !v.is_empty() && *v != "0") {
            None => Ok(None),
            Some(v) => logs::parse_query_time(v)
                .map(Some)
                .map_err(|e| ApiError::bad_request(e.to_string())),
        }
    };
    let (since, until) = (time("since")?, time("until")?);
    let c = lookup(&state, &id)?;
    let rec = c.snapshot();
    let driver = match rec.host_config.log_config.kind.as_str() {
        "" => state.containers.settings.log_driver.clone(),
        d => d.to_string(),
    };
    if driver == "none" {
        return Err(ApiError::not_implemented(logs::READ_NOT_SUPPORTED));
    }
    let tty = rec.config.tty;
    let follow = q.bool("follow");
    let req = LogRequest {
        selection: Selection {
            stdout,
            stderr,
            since,
            until,
            timestamps: q.bool("timestamps"),
            tty,
            merge_frames: !follow,
        },
        tail: logs::parse_tail(q.get("tail")),
        follow,
    };
    let path = state.containers.settings.log_path(&rec.id);
    let (tx, resp) = streaming_response(stream_content_type(tty, version));
    let rt = Handle::current();
    tokio::task::spawn_blocking(move || {
        let mut sink = BodySink { tx, rt };
        let running = move || is_running(&c);
        if let Err(e) = logs::stream(&path, &req, &mut sink, &running) {
            // The status line is gone: all we can do is end the body.
            tracing::warn!(path = %path.display(), error = %e, "reading container logs");
        }
    });
    Ok(resp)
}

async fn container_changes(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<changes::Change>>> {
    let c = lookup(&state, &id)?;
    let rec = c.snapshot();
    let upper = state
        .config
        .data_root
        .join("overlay/containers")
        .join(&rec.id)
        .join("upper");
    let list = tokio::task::spawn_blocking(move || changes::changes(&rec, &upper))
        .await
        .map_err(|e| ApiError::from_internal("changes task failed", e))?
        .map_err(|e| ApiError::from_internal("reading the container's changes", e))?;
    Ok(Json(list))
}

async fn container_export(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let c = lookup(&state, &id)?;
    let containers = state.containers.clone();
    let (tx, resp) = streaming_response("application/x-tar");
    let rt = Handle::current();
    tokio::spawn(async move {
        let rec = c.snapshot();
        let live = rec.state.status.is_live();
        // A stopped container's layers get mounted: keep it from starting.
        let _op = if live { None } else { Some(c.op.lock().await) };
        if !live {
            containers.exit_cleanup_done(&c).await;
        }
        let rec = c.snapshot();
        let live = rec.state.status.is_live();
        let work = tokio::task::spawn_blocking(move || {
            let sink = BodySink { tx, rt };
            let out = io::BufWriter::with_capacity(256 * 1024, sink);
            export::export(&containers, &rec, live, out).and_then(|mut w| {
                w.flush()
                    .map_err(crate::containers::archive::ArchiveError::io(
                        "sending the export",
                    ))
            })
        });
        match work.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "export ended early"),
            Err(e) => tracing::warn!(error = %e, "export task failed"),
        }
    });
    Ok(resp)
}
