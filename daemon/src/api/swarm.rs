//! Swarm-mode and plugin endpoints, answered as dockerd answers them on a
//! node outside any swarm and without managed plugins: berth runs no
//! swarm and installs no plugins. Clients (compose, SDK clean-up code)
//! treat these answers as "nothing here" where a 501 makes them fail.

use axum::extract::Path;
use axum::http::{Method, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::Value;

use super::error::{ApiError, ApiResult};
use super::extract::QueryParams;
use crate::daemon::AppState;

const NOT_A_MANAGER: &str = "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.";
const NOT_IN_A_SWARM: &str = "This node is not part of a swarm";

pub fn routes() -> Router<AppState> {
    let mut r = Router::new()
        .route("/swarm", get(not_a_manager))
        .route("/swarm/leave", post(not_in_a_swarm))
        .route("/swarm/update", post(not_a_manager))
        .route("/swarm/unlockkey", get(not_a_manager))
        .route("/swarm/unlock", post(not_a_manager))
        .route("/nodes/{id}", get(not_a_manager).delete(not_a_manager))
        .route("/nodes/{id}/update", post(not_a_manager))
        .route("/services/create", post(not_a_manager))
        .route("/services/{id}/logs", get(not_a_manager))
        .route("/tasks/{id}/logs", get(not_a_manager))
        .route("/plugins", get(list_plugins))
        .route(
            "/plugins/{*rest}",
            get(plugin_named).post(plugin_named).delete(plugin_named),
        );
    for kind in ["nodes", "services", "tasks", "secrets", "configs"] {
        r = r.route(&format!("/{kind}"), get(not_a_manager));
    }
    for kind in ["services", "secrets", "configs"] {
        r = r.route(
            &format!("/{kind}/{{id}}"),
            get(not_a_manager).delete(not_a_manager),
        );
        r = r.route(&format!("/{kind}/{{id}}/update"), post(not_a_manager));
    }
    for kind in ["secrets", "configs"] {
        r = r.route(&format!("/{kind}/create"), post(not_a_manager));
    }
    r.route("/tasks/{id}", get(not_a_manager))
}

async fn not_a_manager() -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, NOT_A_MANAGER)
}

async fn not_in_a_swarm() -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, NOT_IN_A_SWARM)
}

async fn list_plugins(query: QueryParams) -> ApiResult<Json<Vec<Value>>> {
    query.filters()?.validate(&["capability", "enabled"])?;
    Ok(Json(Vec::new()))
}

/// `/plugins/{name}[/action]`: with no plugin installed every name is
/// unknown. Pulling, creating and privileges would need a plugin
/// manager, which berth does not have.
async fn plugin_named(method: Method, Path(rest): Path<String>) -> ApiError {
    let name = match (&method, rest.as_str()) {
        (&Method::GET, "privileges") | (&Method::POST, "pull" | "create") => {
            return ApiError::not_implemented(format!("not implemented: {method} /plugins/{rest}"))
        }
        (&Method::DELETE, name) => Some(name),
        (&Method::GET, rest) => rest.strip_suffix("/json"),
        (_, rest) => ["/enable", "/disable", "/upgrade", "/push", "/set"]
            .iter()
            .find_map(|a| rest.strip_suffix(a)),
    };
    match name.filter(|n| !n.is_empty()) {
        Some(name) => ApiError::not_found(format!("plugin \"{name}\" not found")),
        None => ApiError::not_found("page not found"),
    }
}
