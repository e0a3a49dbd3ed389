//! `/networks`: list, inspect, create, remove, prune, connect, disconnect.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

use super::error::{ApiError, ApiResult};
use super::extract::{Filters, JsonBody, QueryParams};
use crate::daemon::AppState;
use crate::events::{Event, EventType};
use crate::network::{CreateRequest, NetError};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/networks", get(list))
        .route("/networks/create", post(create))
        .route("/networks/prune", post(prune))
        .route("/networks/{id}", get(inspect).delete(remove))
        .route("/networks/{id}/connect", post(connect))
        .route("/networks/{id}/disconnect", post(disconnect))
}

impl From<NetError> for ApiError {
    fn from(e: NetError) -> Self {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        ApiError::new(status, e.to_string())
    }
}

fn event(state: &AppState, action: &str, net: &Value) {
    let id = net.get("Id").and_then(Value::as_str).unwrap_or("");
    let name = net.get("Name").and_then(Value::as_str).unwrap_or("");
    let driver = net.get("Driver").and_then(Value::as_str).unwrap_or("");
    state.events.publish(
        Event::new(EventType::Network, action, id)
            .attr("name", name)
            .attr("type", driver),
    );
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct IpamConfig {
    subnet: Option<String>,
    gateway: Option<String>,
    #[serde(rename = "IPRange")]
    ip_range: Option<String>,
    auxiliary_addresses: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct Ipam {
    driver: Option<String>,
    config: Option<Vec<IpamConfig>>,
    options: Option<BTreeMap<String, String>>,
}

/// `NetworkCreateRequest`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct CreateBody {
    name: String,
    driver: Option<String>,
    internal: bool,
    attachable: bool,
    ingress: bool,
    #[serde(rename = "EnableIPv6")]
    enable_ipv6: Option<bool>,
    #[serde(rename = "IPAM")]
    ipam: Option<Ipam>,
    options: Option<BTreeMap<String, String>>,
    labels: Option<BTreeMap<String, String>>,
    config_only: bool,
    config_from: Option<Value>,
    scope: Option<String>,
}

async fn create(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<CreateBody>,
) -> ApiResult<Response> {
    if body.ingress || body.config_only || body.config_from.as_ref().is_some_and(|c| !c.is_null()) {
        return Err(ApiError::bad_request(
            "ingress and config-only networks need swarm, which berth does not implement",
        ));
    }
    if body
        .scope
        .as_deref()
        .is_some_and(|s| !s.is_empty() && s != "local")
    {
        return Err(ApiError::bad_request(format!(
            "scope {:?} is not supported (only local)",
            body.scope.unwrap_or_default()
        )));
    }
    let ipam = body.ipam.unwrap_or_default();
    if ipam
        .driver
        .as_deref()
        .is_some_and(|d| !d.is_empty() && d != "default")
    {
        return Err(ApiError::bad_request(format!(
            "IPAM driver {:?} is not supported (only default)",
            ipam.driver.unwrap_or_default()
        )));
    }
    let ipv6 = body.enable_ipv6 == Some(true);
    // One IPv4 and, with EnableIPv6, one IPv6 pool.
    let (v6, v4): (Vec<IpamConfig>, Vec<IpamConfig>) = ipam
        .config
        .unwrap_or_default()
        .into_iter()
        .partition(|c| c.subnet.as_deref().is_some_and(|s| s.contains(':')));
    if v4.len() > 1 || v6.len() > 1 {
        return Err(ApiError::bad_request(
            "berth networks have one IPv4 and one IPv6 pool: give at most one IPAM config of each",
        ));
    }
    if !v6.is_empty() && !ipv6 {
        return Err(ApiError::bad_request(
            "an IPv6 subnet needs EnableIPv6 (--ipv6)",
        ));
    }
    let cfg = v4.into_iter().next().unwrap_or_default();
    let cfg6 = v6.into_iter().next().unwrap_or_default();
    let req = CreateRequest {
        name: body.name,
        driver: body.driver.unwrap_or_default(),
        subnet: cfg.subnet,
        gateway: cfg.gateway,
        ip_range: cfg.ip_range,
        aux_addresses: cfg.auxiliary_addresses.unwrap_or_default(),
        internal: body.internal,
        attachable: body.attachable,
        labels: body.labels.unwrap_or_default(),
        options: body.options.unwrap_or_default(),
        ipam_options: ipam.options,
        ipv6,
        subnet6: cfg6.subnet,
        gateway6: cfg6.gateway,
    };
    let networks = state.networks.clone();
    let rec = tokio::task::spawn_blocking(move || networks.create(req))
        .await
        .map_err(|e| ApiError::from_internal("network task failed", e))??;
    let v = state.networks.inspect(&rec.id)?;
    event(&state, "create", &v);
    Ok((
        StatusCode::CREATED,
        Json(json!({ "Id": rec.id, "Warning": "" })),
    )
        .into_response())
}

const LIST_FILTERS: &[&str] = &["dangling", "driver", "id", "label", "name", "scope", "type"];

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn selected(v: &Value, f: &Filters) -> ApiResult<bool> {
    let name = str_of(v, "Name");
    let builtin = matches!(name, "bridge" | "host" | "none");
    for t in f.get("type") {
        if t != "custom" && t != "builtin" {
            return Err(ApiError::bad_request(format!(
                "invalid filter: 'type'='{t}'"
            )));
        }
    }
    let dangling = match f.get("dangling").first().map(String::as_str) {
        None => None,
        Some("true" | "1") => Some(true),
        Some("false" | "0") => Some(false),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid filter 'dangling={other}'"
            )))
        }
    };
    let in_use = v
        .get("Containers")
        .and_then(Value::as_object)
        .is_some_and(|c| !c.is_empty());
    let labels = v.get("Labels").cloned().unwrap_or(Value::Null);
    Ok(f.matches_any("name", |n| name.contains(n))
        && f.matches_any("id", |i| str_of(v, "Id").starts_with(i))
        && f.matches_exact("driver", str_of(v, "Driver"))
        && f.matches_exact("scope", "local")
        && f.matches_any("type", |t| (t == "builtin") == builtin)
        && dangling.is_none_or(|d| d == (!in_use && !builtin))
        && f.matches_labels("label", |k| labels.get(k).and_then(Value::as_str)))
}

async fn list(State(state): State<AppState>, q: QueryParams) -> ApiResult<Json<Value>> {
    let filters = q.filters()?;
    filters.validate(LIST_FILTERS)?;
    let mut out = Vec::new();
    for v in state.networks.list() {
        if selected(&v, &filters)? {
            out.push(v);
        }
    }
    Ok(Json(Value::Array(out)))
}

async fn inspect(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(state.networks.inspect(&id)?))
}

async fn remove(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let v = state.networks.inspect(&id)?;
    let networks = state.networks.clone();
    tokio::task::spawn_blocking(move || networks.remove(&id))
        .await
        .map_err(|e| ApiError::from_internal("network task failed", e))??;
    event(&state, "destroy", &v);
    Ok(StatusCode::NO_CONTENT)
}

async fn prune(State(state): State<AppState>, q: QueryParams) -> ApiResult<Json<Value>> {
    let filters = q.filters()?;
    filters.validate(&["label", "label!", "until"])?;
    if filters.contains("until") {
        return Err(ApiError::bad_request(
            "the until filter is not supported by berth's network prune",
        ));
    }
    let networks = state.networks.clone();
    let before = state.networks.list();
    let deleted = tokio::task::spawn_blocking(move || {
        networks.prune(|n| {
            let keep_label =
                !filters.matches_labels("label", |k| n.labels.get(k).map(String::as_str));
            let excluded = filters
                .get("label!")
                .iter()
                .any(|want| match want.split_once('=') {
                    Some((k, v)) => n.labels.get(k).is_some_and(|x| x == v),
                    None => n.labels.contains_key(want),
                });
            keep_label || excluded
        })
    })
    .await
    .map_err(|e| ApiError::from_internal("network task failed", e))?;
    for v in before
        .iter()
        .filter(|v| deleted.iter().any(|d| d == str_of(v, "Name")))
    {
        event(&state, "destroy", v);
    }
    Ok(Json(json!({ "NetworksDeleted": deleted })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ConnectBody {
    container: String,
    endpoint_config: Option<Value>,
}

async fn connect(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ConnectBody>,
) -> ApiResult<StatusCode> {
    let epc = body.endpoint_config.unwrap_or(Value::Null);
    state
        .containers
        .connect_network(&body.container, &id, epc)
        .await?;
    Ok(StatusCode::OK)
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct DisconnectBody {
    container: String,
    force: bool,
}

async fn disconnect(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<DisconnectBody>,
) -> ApiResult<StatusCode> {
    state
        .containers
        .disconnect_network(&body.container, &id, body.force)
        .await?;
    Ok(StatusCode::OK)
}
