//! `/volumes`: create, list, inspect, remove, prune.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

use super::error::{ApiError, ApiResult};
use super::extract::{parse_bool, Filters, JsonBody, QueryParams};
use super::version::ApiVersion;
use crate::daemon::AppState;
use crate::volumes::{CreateRequest, Volume, VolumeError, ANONYMOUS_LABEL};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/volumes", get(list))
        .route("/volumes/create", post(create))
        .route("/volumes/prune", post(prune))
        .route("/volumes/{name}", get(inspect).delete(remove))
}

impl From<VolumeError> for ApiError {
    fn from(e: VolumeError) -> Self {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        ApiError::new(status, e.to_string())
    }
}

/// `VolumeCreateOptions`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct CreateBody {
    name: Option<String>,
    driver: Option<String>,
    driver_opts: Option<BTreeMap<String, String>>,
    labels: Option<BTreeMap<String, String>>,
    cluster_volume_spec: Option<Value>,
}

async fn create(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<CreateBody>,
) -> ApiResult<Response> {
    if body.cluster_volume_spec.is_some() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.",
        ));
    }
    let volumes = state.volumes.clone();
    let req = CreateRequest {
        name: body.name,
        driver: body.driver.unwrap_or_default(),
        options: body.driver_opts.unwrap_or_default(),
        labels: body.labels.unwrap_or_default(),
        anonymous: false,
    };
    let (volume, _) = blocking(move || volumes.create(req)).await?;
    Ok((StatusCode::CREATED, Json(state.volumes.to_json(&volume))).into_response())
}

const LIST_FILTERS: [&str; 4] = ["dangling", "driver", "label", "name"];

async fn list(State(state): State<AppState>, q: QueryParams) -> ApiResult<Json<Value>> {
    let filters = q.filters()?;
    filters.validate(&LIST_FILTERS)?;
    let dangling = bool_filter(&filters, "dangling")?;
    let store = &state.volumes;
    let volumes: Vec<Value> = store
        .list()
        .iter()
        .filter(|v| dangling.is_none_or(|d| d != store.in_use(&v.name)))
        .filter(|v| filters.matches_exact("driver", &v.driver))
        .filter(|v| filters.matches_any("name", |n| v.name.contains(n)))
        .filter(|v| filters.matches_labels("label", |k| v.labels.get(k).map(String::as_str)))
        .map(|v| store.to_json(v))
        .collect();
    Ok(Json(json!({ "Volumes": volumes, "Warnings": [] })))
}

/// A boolean filter such as `dangling=true`; None when not given.
fn bool_filter(filters: &Filters, name: &str) -> ApiResult<Option<bool>> {
    let values = filters.get(name);
    let Some(first) = values.first() else {
        return Ok(None);
    };
    match first.to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(Some(true)),
        "false" | "0" => Ok(Some(false)),
        _ => Err(ApiError::bad_request(format!(
            "invalid filter '{name}={first}'"
        ))),
    }
}

async fn inspect(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let volume = state.volumes.get(&name)?;
    Ok(Json(state.volumes.to_json(&volume)))
}

async fn remove(
    State(state): State<AppState>,
    Path(name): Path<String>,
    q: QueryParams,
) -> ApiResult<StatusCode> {
    let force = q.bool("force");
    let volumes = state.volumes.clone();
    blocking(move || volumes.remove(&name, force)).await?;
    Ok(StatusCode::NO_CONTENT)
}

const PRUNE_FILTERS: [&str; 3] = ["label", "label!", "all"];

async fn prune(
    State(state): State<AppState>,
    version: ApiVersion,
    q: QueryParams,
) -> ApiResult<Json<Value>> {
    let filters = q.filters()?;
    filters.validate(&PRUNE_FILTERS)?;
    // Since API 1.42 only anonymous volumes are pruned unless all=true.
    let all = match filters.get("all").first() {
        Some(v) => parse_bool(v),
        None => !version.at_least(1, 42),
    };
    let selected = move |v: &Volume| {
        (all || v.labels.contains_key(ANONYMOUS_LABEL))
            && filters.matches_labels("label", |k| v.labels.get(k).map(String::as_str))
            && filters
                .get("label!")
                .iter()
                .all(|want| !label_matches(v, want))
    };
    let volumes = state.volumes.clone();
    let (deleted, reclaimed) = blocking(move || volumes.prune(selected)).await?;
    Ok(Json(
        json!({ "VolumesDeleted": deleted, "SpaceReclaimed": reclaimed }),
    ))
}

/// `key` or `key=value` holds for the volume's labels.
fn label_matches(v: &Volume, want: &str) -> bool {
    match want.split_once('=') {
        Some((k, val)) => v.labels.get(k).is_some_and(|x| x == val),
        None => v.labels.contains_key(want),
    }
}

/// Runs file-system work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, VolumeError> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::from_internal("volume task failed", e))?
        .map_err(ApiError::from)
}
