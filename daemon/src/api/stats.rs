//! `GET /containers/{id}/stats`: one sample, or one per second.

use std::sync::OnceLock;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::Value;

use super::error::{ApiError, ApiResult};
use super::extract::QueryParams;
use super::stream::streaming_response;
use crate::containers::stats::{self, Sample};
use crate::daemon::AppState;

/// dockerd's collection interval.
const INTERVAL: Duration = Duration::from_secs(1);

pub fn routes() -> Router<AppState> {
    Router::new().route("/containers/{id}/stats", get(container_stats))
}

fn machine_memory() -> u64 {
    static MEM: OnceLock<u64> = OnceLock::new();
    *MEM.get_or_init(stats::machine_memory)
}

/// The current sample of container `reference`: `Ok(None)` when it is not
/// running, `Err` when it is gone.
async fn take_sample(
    state: &AppState,
    reference: &str,
) -> ApiResult<(String, String, Option<Sample>)> {
    let c = state.containers.get(reference).map_err(ApiError::from)?;
    let rec = c.snapshot();
    if !rec.state.status.is_live() {
        return Ok((rec.name, rec.id, None));
    }
    let pid = match rec.state.pid {
        pid if pid > 0 => pid,
        // Not recorded: the shim knows its init's pid.
        _ => match state
            .containers
            .shim(&rec.id)
            .call(&berth_common::shim::Request::State)
            .await
        {
            Ok(resp) => resp.pid.unwrap_or(0),
            Err(_) => 0,
        },
    };
    if pid <= 0 {
        return Ok((rec.name, rec.id, None));
    }
    let sample = tokio::task::spawn_blocking(move || stats::sample(pid, machine_memory()))
        .await
        .map_err(|e| ApiError::from_internal("stats task", e))?;
    match sample {
        Ok(s) => Ok((rec.name, rec.id, Some(s))),
        Err(e) => {
            // It may have exited since we looked: report it as stopped then.
            if c.status().is_live() {
                tracing::warn!(id = %rec.id, error = %e, "reading container stats");
            }
            Ok((rec.name, rec.id, None))
        }
    }
}

fn render(name: &str, id: &str, cur: Option<&Sample>, prev: Option<&Sample>) -> Value {
    match cur {
        Some(s) => stats::render(name, id, s, prev),
        None => stats::zero(name, id),
    }
}

async fn container_stats(
    State(state): State<AppState>,
    Path(id): Path<String>,
    q: QueryParams,
) -> ApiResult<Response> {
    let stream = q.bool_or("stream", true);
    let one_shot = q.bool("one-shot");
    if stream && one_shot {
        return Err(ApiError::bad_request(
            "cannot have stream=true and one-shot=true",
        ));
    }
    let (name, cid, first) = take_sample(&state, &id).await?;
    if !stream {
        let body = match (&first, one_shot) {
            // Like dockerd: a second sample a collection interval later, so
            // precpu_stats are filled and CPU % can be computed.
            (Some(prev), false) => {
                tokio::time::sleep(INTERVAL).await;
                match take_sample(&state, &id).await {
                    Ok((_, _, Some(cur))) => render(&name, &cid, Some(&cur), Some(prev)),
                    _ => stats::zero(&name, &cid),
                }
            }
            (cur, _) => render(&name, &cid, cur.as_ref(), None),
        };
        let (tx, resp) = streaming_response("application/json");
        tokio::spawn(async move {
            let _ = tx.send_json(&body).await;
        });
        return Ok(resp);
    }
    let (tx, resp) = streaming_response("application/json");
    tokio::spawn(async move {
        let mut prev: Option<Sample> = None;
        let mut cur = first;
        loop {
            if tx
                .send_json(&render(&name, &cid, cur.as_ref(), prev.as_ref()))
                .await
                .is_err()
            {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(INTERVAL) => {}
                _ = tx.closed() => return,
            }
            prev = cur;
            cur = match take_sample(&state, &cid).await {
                Ok((_, _, s)) => s,
                // Removed: the stream ends, as dockerd's does.
                Err(_) => return,
            };
        }
    });
    Ok(resp)
}
