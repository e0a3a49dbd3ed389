//! Container endpoints: a thin HTTP layer over [`Containers`].

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult};
use super::extract::{JsonBody, OptionalJsonBody, QueryParams};
use super::stream::{streaming_response, Hijack};
use super::version::ApiVersion;
use crate::containers::config::{CreateBody, UpdateBody};
use crate::containers::exec::detach;
use crate::containers::{AttachRequest, ContainerError, Containers, InspectShape, LIST_FILTERS};
use crate::daemon::AppState;

impl From<ContainerError> for ApiError {
    fn from(e: ContainerError) -> Self {
        let msg = e.to_string();
        match e {
            ContainerError::NotFound(_) | ContainerError::NotFoundOther(_) => {
                ApiError::not_found(msg)
            }
            ContainerError::Conflict(_) => ApiError::conflict(msg),
            ContainerError::InvalidParameter(_) => ApiError::bad_request(msg),
            ContainerError::NotModified => ApiError::not_modified(),
            ContainerError::Internal(_) => ApiError::internal(msg),
        }
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/containers/create", post(create))
        .route("/containers/json", get(list))
        .route("/containers/prune", post(prune))
        .route(INSPECT_ROUTE, get(inspect))
        .route("/containers/{id}/start", post(start))
        .route("/containers/{id}/stop", post(stop))
        .route("/containers/{id}/restart", post(restart))
        .route("/containers/{id}/kill", post(kill))
        .route("/containers/{id}/wait", post(wait))
        .route("/containers/{id}", delete(remove))
        // `DELETE /containers/parent/alias?link=1` names a link.
        .route("/containers/{parent}/{alias}", delete(remove_link))
        .route("/containers/{id}/rename", post(rename))
        .route("/containers/{id}/pause", post(pause))
        .route("/containers/{id}/unpause", post(unpause))
        .route("/containers/{id}/update", post(update))
        .route("/containers/{id}/top", get(top))
        .route("/containers/{id}/attach", post(attach))
}

fn store(state: &AppState) -> Arc<Containers> {
    state.containers.clone()
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ContainerError> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::from_internal("container task", e))?
        .map_err(ApiError::from)
}

async fn create(
    State(state): State<AppState>,
    version: ApiVersion,
    query: QueryParams,
    JsonBody(mut body): JsonBody<CreateBody>,
) -> ApiResult<Response> {
    if !version.at_least(1, 44) {
        crate::health::config::strip_start_interval(&mut body.config.healthcheck);
    }
    if let Some(platform) = query.get("platform").filter(|p| !p.is_empty()) {
        if !platform.starts_with("linux") {
            return Err(ApiError::bad_request(format!(
                "image with reference {} was found but does not match the specified platform: wanted {platform}",
                body.config.image
            )));
        }
    }
    let name = query.get("name").map(str::to_string);
    let containers = store(&state);
    let (id, warnings) = blocking(move || containers.create(name.as_deref(), body)).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "Id": id, "Warnings": warnings })),
    )
        .into_response())
}

/// A JSON body serialised already.
fn json_bytes(body: impl Into<axum::body::Body>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        body.into(),
    )
        .into_response()
}

async fn list(State(state): State<AppState>, query: QueryParams) -> ApiResult<Response> {
    let filters = query.filters()?;
    filters.validate(LIST_FILTERS)?;
    let all = query.bool("all");
    let size = query.bool("size");
    let limit = query.i64("limit")?;
    let containers = store(&state);
    // Without filters or sizes the answer is built from kept entries, no
    // I/O: not worth a blocking thread.
    let out = if size || !filters.is_empty() {
        blocking(move || containers.list(all, limit, size, &filters)).await?
    } else {
        containers.list(all, limit, size, &filters)?
    };
    Ok(json_bytes(out))
}

/// The inspect route's template, also the metrics label of its hot path.
pub(super) const INSPECT_ROUTE: &str = "/containers/{id}/json";

/// `GET /containers/{id}/json` without a query, answered before the
/// router (see `super::hot_answer`) with what [`inspect`] answers: the
/// kept bytes, or the same error. None for any other request, and for an
/// ID with a percent-escape, which the router's path extractor decodes.
pub(super) fn inspect_hot(
    state: &AppState,
    method: &axum::http::Method,
    path: &str,
    query: Option<&str>,
    version: ApiVersion,
) -> Option<Response> {
    if method != axum::http::Method::GET || query.is_some() {
        return None;
    }
    let id = path.strip_prefix("/containers/")?.strip_suffix("/json")?;
    if id.is_empty() || id.contains(['/', '%']) {
        return None;
    }
    Some(
        match state.containers.inspect_json(id, inspect_shape(version)) {
            Ok(bytes) => json_bytes(bytes),
            Err(e) => ApiError::from(e).into_response(),
        },
    )
}

async fn inspect(
    State(state): State<AppState>,
    Path(id): Path<String>,
    version: ApiVersion,
    query: QueryParams,
) -> ApiResult<Response> {
    let shape = inspect_shape(version);
    let containers = store(&state);
    if !query.bool("size") {
        return Ok(json_bytes(containers.inspect_json(&id, shape)?));
    }
    let mut v = blocking(move || containers.inspect(&id, true)).await?;
    shape.apply(&mut v);
    Ok(Json(v).into_response())
}

fn inspect_shape(version: ApiVersion) -> InspectShape {
    if !version.at_least(1, 42) {
        InspectShape::Before142
    } else if !version.at_least(1, 45) {
        InspectShape::Before145
    } else {
        InspectShape::Current
    }
}

async fn start(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    store(&state).start(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `t` (or `timeout` in old clients) and `signal`.
fn stop_params(query: &QueryParams) -> ApiResult<(Option<i64>, Option<String>)> {
    let t = match query.i64("t")? {
        Some(t) => Some(t),
        None => query.i64("timeout")?,
    };
    Ok((t, query.get("signal").map(str::to_string)))
}

async fn stop(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: QueryParams,
) -> ApiResult<StatusCode> {
    let (t, signal) = stop_params(&query)?;
    store(&state).stop(&id, t, signal.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn restart(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: QueryParams,
) -> ApiResult<StatusCode> {
    let (t, signal) = stop_params(&query)?;
    store(&state).restart(&id, t, signal.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn kill(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: QueryParams,
) -> ApiResult<StatusCode> {
    store(&state).kill(&id, query.get("signal")).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Registers the wait, sends the headers at once (clients rely on that
/// before they start the container), and the body when the condition holds.
async fn wait(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: QueryParams,
) -> ApiResult<Response> {
    let condition = query.get("condition").unwrap_or("").to_string();
    let waiting = store(&state).wait(&id, &condition)?;
    let (tx, resp) = streaming_response("application/json");
    tokio::spawn(async move {
        tokio::select! {
            (code, error) = waiting => {
                let mut body = json!({ "StatusCode": code });
                if !error.is_empty() {
                    body["Error"] = json!({ "Message": error });
                }
                let _ = tx.send_json(&body).await;
            }
            _ = tx.closed() => {}
        }
    });
    Ok(resp)
}

async fn remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: QueryParams,
) -> ApiResult<StatusCode> {
    if query.bool("link") {
        store(&state).remove_link(&id)?;
        return Ok(StatusCode::NO_CONTENT);
    }
    store(&state)
        .remove(&id, query.bool("force"), query.bool("v"))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove_link(
    State(state): State<AppState>,
    Path((parent, alias)): Path<(String, String)>,
    query: QueryParams,
) -> ApiResult<StatusCode> {
    if !query.bool("link") {
        return Err(ApiError::not_found(format!(
            "No such container: {parent}/{alias}"
        )));
    }
    store(&state).remove_link(&format!("{parent}/{alias}"))?;
    Ok(StatusCode::NO_CONTENT)
}

async fn rename(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: QueryParams,
) -> ApiResult<StatusCode> {
    let name = query.get("name").unwrap_or("").to_string();
    let containers = store(&state);
    blocking(move || containers.rename(&id, &name)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn pause(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    store(&state).pause(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn unpause(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    store(&state).unpause(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    OptionalJsonBody(body): OptionalJsonBody<UpdateBody>,
) -> ApiResult<Json<Value>> {
    let body = body.unwrap_or_default();
    let containers = store(&state);
    let warnings = blocking(move || containers.update(&id, body)).await?;
    Ok(Json(json!({ "Warnings": warnings })))
}

async fn top(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: QueryParams,
) -> ApiResult<Json<Value>> {
    let args = query.get("ps_args").unwrap_or("-ef").to_string();
    Ok(Json(store(&state).top(&id, &args).await?))
}

async fn attach(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: QueryParams,
    version: ApiVersion,
    hijack: Hijack,
) -> ApiResult<Response> {
    let containers = store(&state);
    let c = containers.get(&id)?;
    let tty = c.snapshot().config.tty;
    let detach_keys = detach::parse(query.get("detachKeys").unwrap_or(""))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let req = AttachRequest {
        stdin: query.bool("stdin"),
        stdout: query.bool("stdout"),
        stderr: query.bool("stderr"),
        stream: query.bool("stream"),
        logs: query.bool("logs"),
        detach_keys,
    };
    if !req.stream && !req.logs {
        return Err(ApiError::bad_request(
            "at least one of stream or logs must be set",
        ));
    }
    let content_type = hijack.content_type(tty, version);
    let id = c.id.clone();
    let ticket = containers.attach_ticket(&id, &req).await?;
    Ok(hijack.respond(content_type, move |io| async move {
        containers.attach(&id, req, ticket, io).await;
    }))
}

async fn prune(State(state): State<AppState>, query: QueryParams) -> ApiResult<Json<Value>> {
    let filters = query.filters()?;
    filters.validate(&["label", "label!", "until"])?;
    let until = match filters.get("until").first() {
        Some(raw) => super::events::parse_time(raw, crate::events::now_nanos())?,
        None => None,
    };
    let (deleted, reclaimed) = store(&state).prune(&filters, until).await?;
    Ok(Json(
        json!({ "ContainersDeleted": deleted, "SpaceReclaimed": reclaimed }),
    ))
}
