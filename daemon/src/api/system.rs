//! System endpoints: /_ping, /version, /info, /system/df.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::version::{MAX_VERSION, MIN_VERSION};
use crate::daemon::AppState;

pub const SERVER_VERSION: &str = env!("CARGO_PKG_VERSION");
pub const SERVER_HEADER: &str = concat!("berth/", env!("CARGO_PKG_VERSION"), " (linux)");

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/_ping", get(ping).head(ping))
        .route("/version", get(version))
}

async fn ping(method: Method) -> Response {
    let mut headers = HeaderMap::new();
    let set = |h: &mut HeaderMap, k: &'static str, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(&mut headers, "API-Version", MAX_VERSION_STR);
    set(&mut headers, "OSType", "linux");
    set(&mut headers, "Docker-Experimental", "false");
    // Only the classic builder API (POST /build); there is no BuildKit.
    set(&mut headers, "Builder-Version", "1");
    set(&mut headers, "Swarm", "inactive");
    set(
        &mut headers,
        "Cache-Control",
        "no-cache, no-store, must-revalidate",
    );
    set(&mut headers, "Pragma", "no-cache");
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if method == Method::HEAD {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        return (headers, "").into_response();
    }
    (headers, "OK").into_response()
}

const MAX_VERSION_STR: &str = "1.50";
const MIN_VERSION_STR: &str = "1.24";

async fn version(State(state): State<AppState>) -> Json<Value> {
    debug_assert_eq!(MAX_VERSION.to_string(), MAX_VERSION_STR);
    debug_assert_eq!(MIN_VERSION.to_string(), MIN_VERSION_STR);
    let host = crate::host::facts();
    let build = crate::host::build_info();
    let runtime = crate::host::runtime_version(&state.config);
    Json(json!({
        "Platform": { "Name": "berth" },
        "Components": [
            {
                "Name": "Engine",
                "Version": SERVER_VERSION,
                "Details": {
                    "ApiVersion": MAX_VERSION_STR,
                    "Arch": host.go_arch,
                    "BuildTime": build.build_time,
                    "Experimental": "false",
                    "GitCommit": build.git_commit,
                    "GoVersion": build.rustc,
                    "KernelVersion": host.kernel_version,
                    "MinAPIVersion": MIN_VERSION_STR,
                    "Os": "linux",
                }
            },
            {
                "Name": state.config.default_runtime,
                "Version": runtime.version,
                "Details": { "GitCommit": runtime.commit }
            }
        ],
        "Version": SERVER_VERSION,
        "ApiVersion": MAX_VERSION_STR,
        "MinAPIVersion": MIN_VERSION_STR,
        "GitCommit": build.git_commit,
        "GoVersion": build.rustc,
        "Os": "linux",
        "Arch": host.go_arch,
        "KernelVersion": host.kernel_version,
        "BuildTime": build.build_time,
    }))
}
