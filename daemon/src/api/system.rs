//! System endpoints: /_ping, /version, /info, /system/df.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult};
use super::extract::QueryParams;
use super::version::{MAX_VERSION, MIN_VERSION};
use crate::config::Host;
use crate::daemon::AppState;

pub const SERVER_VERSION: &str = env!("CARGO_PKG_VERSION");
pub const SERVER_HEADER: &str = concat!("berth/", env!("CARGO_PKG_VERSION"), " (linux)");

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/_ping", get(ping).head(ping))
        .route("/version", get(version))
        .route("/info", get(info))
        .route("/system/df", get(disk_usage))
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
/// The API version every response advertises.
pub const API_VERSION: &str = MAX_VERSION_STR;
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

async fn info(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let st = state.clone();
    let images = tokio::task::spawn_blocking(move || st.images.all_images().map(|i| i.len()))
        .await
        .map_err(|e| ApiError::from_internal("counting images", e))?
        .map_err(|e| ApiError::from_internal("counting images", e))?;
    let counts = state.reports.container_counts();
    let host = crate::host::facts();
    let cg = &host.cgroup;
    let config = state.config_now();
    let config = &*config;
    let runtime = crate::host::runtime_version(config);
    let describe = |rt: &crate::config::RuntimeConfig| {
        let mut v = json!({ "path": rt.path });
        if !rt.runtime_args.is_empty() {
            v["runtimeArgs"] = json!(rt.runtime_args);
        }
        v
    };
    let mut runtimes: serde_json::Map<String, Value> = config
        .runtimes
        .iter()
        .map(|(name, rt)| (name.clone(), describe(rt)))
        .collect();
    // dockerd's names for its default runtime are accepted as berth's
    // default (see Containers::runtime_path), so they are listed as such.
    if let Some(default) = config.runtimes.get(&config.default_runtime) {
        for alias in ["runc", "io.containerd.runc.v2"] {
            runtimes
                .entry(alias.to_owned())
                .or_insert_with(|| describe(default));
        }
    }
    let mut security = vec!["name=seccomp,profile=builtin".to_string()];
    if cg.version == "2" {
        security.push("name=cgroupns".into());
    }
    let mut insecure_cidrs = vec!["::1/128".to_string(), "127.0.0.0/8".to_string()];
    insecure_cidrs.extend(config.insecure_registries.iter().cloned());
    let mut info = json!({
        "ID": state.id,
        "Containers": counts.running + counts.paused + counts.stopped,
        "ContainersRunning": counts.running,
        "ContainersPaused": counts.paused,
        "ContainersStopped": counts.stopped,
        "Images": images,
        "Driver": "overlay2",
        "DriverStatus": crate::host::driver_status(&config.data_root),
        "DockerRootDir": config.data_root,
        "Plugins": {
            "Volume": ["local"],
            "Network": ["bridge", "host", "null"],
            "Authorization": [],
            "Log": ["json-file", "none"],
        },
        "MemoryLimit": cg.memory_limit,
        "SwapLimit": cg.swap_limit,
        "KernelMemoryTCP": cg.kernel_memory_tcp,
        "CpuCfsPeriod": cg.cpu_cfs_period,
        "CpuCfsQuota": cg.cpu_cfs_quota,
        "CPUShares": cg.cpu_shares,
        "CPUSet": cg.cpu_set,
        "PidsLimit": cg.pids_limit,
        "OomKillDisable": cg.oom_kill_disable,
    });
    let more = json!({
        "IPv4Forwarding": crate::host::ipv4_forwarding(),
        "Debug": config.debug,
        "NFd": crate::host::open_fds(),
        "NGoroutines": tokio::runtime::Handle::current().metrics().num_alive_tasks(),
        "SystemTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        "LoggingDriver": config.log_driver,
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": cg.version,
        "NEventsListener": state.events.listener_count(),
        "KernelVersion": host.kernel_version,
        "OperatingSystem": host.operating_system,
        "OSVersion": host.os_version,
        "OSType": "linux",
        "Architecture": host.architecture,
        "NCPU": host.ncpu,
        "MemTotal": host.mem_total,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {
            "InsecureRegistryCIDRs": insecure_cidrs,
            "IndexConfigs": {
                "docker.io": {
                    "Name": "docker.io",
                    "Mirrors": config.registry_mirrors,
                    "Secure": true,
                    "Official": true,
                }
            },
            "Mirrors": config.registry_mirrors,
        },
        "GenericResources": [],
        "HttpProxy": crate::host::proxy_env("HTTP_PROXY"),
        "HttpsProxy": crate::host::proxy_env("HTTPS_PROXY"),
        "NoProxy": crate::host::proxy_env("NO_PROXY"),
        "Name": host.hostname,
        "Labels": config.labels,
        "ExperimentalBuild": false,
        "ServerVersion": SERVER_VERSION,
        "Runtimes": runtimes,
        "DefaultRuntime": config.default_runtime,
        "Swarm": {
            "NodeID": "",
            "NodeAddr": "",
            "LocalNodeState": "inactive",
            "ControlAvailable": false,
            "Error": "",
            "RemoteManagers": null,
        },
        // Shims keep containers running after a crash either way; this
        // says whether a graceful stop leaves them running too.
        "LiveRestoreEnabled": config.live_restore,
        "Isolation": "",
        "InitBinary": "berth-init",
        "ContainerdCommit": { "ID": "" },
        // berth-runtime reports no commit; its version identifies it then.
        "RuncCommit": {
            "ID": if runtime.commit.is_empty() { &runtime.version } else { &runtime.commit },
        },
        "InitCommit": { "ID": crate::host::build_info().git_commit },
        "SecurityOptions": security,
        "DefaultAddressPools": [],
        "CDISpecDirs": [],
        "Warnings": warnings(&state),
    });
    if let (Some(a), Value::Object(b)) = (info.as_object_mut(), more) {
        a.extend(b);
    }
    Ok(Json(info))
}

/// dockerd-style warnings about what this host or configuration lacks.
fn warnings(state: &AppState) -> Vec<String> {
    let cg = &crate::host::facts().cgroup;
    let mut out = Vec::new();
    let checks = [
        (cg.memory_limit, "WARNING: No memory limit support"),
        (cg.swap_limit, "WARNING: No swap limit support"),
        (cg.cpu_cfs_quota, "WARNING: No cpu cfs quota support"),
        (cg.cpu_cfs_period, "WARNING: No cpu cfs period support"),
        (cg.cpu_shares, "WARNING: No cpu shares support"),
        (cg.cpu_set, "WARNING: No cpuset support"),
        (cg.pids_limit, "WARNING: No pids limit support"),
    ];
    out.extend(
        checks
            .iter()
            .filter(|(ok, _)| !ok)
            .map(|(_, w)| w.to_string()),
    );
    for host in &state.config.hosts {
        if let Host::Tcp(addr) = host {
            let loopback = addr
                .parse::<std::net::SocketAddr>()
                .map(|a| a.ip().is_loopback())
                .unwrap_or(addr.starts_with("localhost:"));
            if !loopback {
                out.push(format!(
                    "WARNING: API is accessible on http://{addr} without encryption."
                ));
            }
        }
    }
    if !crate::host::ipv4_forwarding() {
        out.push("WARNING: IPv4 forwarding is disabled".into());
    }
    out
}

/// GET /system/df: images, containers, volumes and build cache usage.
async fn disk_usage(State(state): State<AppState>, q: QueryParams) -> ApiResult<Json<Value>> {
    const TYPES: &[&str] = &["container", "image", "volume", "build-cache"];
    let requested = q.get_all("type");
    if let Some(bad) = requested.iter().find(|t| !TYPES.contains(t)) {
        return Err(ApiError::bad_request(format!(
            "unknown object type: {bad} (expected one of {})",
            TYPES.join(", ")
        )));
    }
    let wants = |t: &str| requested.is_empty() || requested.contains(&t);
    let (want_images, want_containers, want_volumes, want_cache) = (
        wants("image"),
        wants("container"),
        wants("volume"),
        wants("build-cache"),
    );
    let st = state.clone();
    let mut out = tokio::task::spawn_blocking(move || -> ApiResult<Value> {
        let mut out = serde_json::Map::new();
        // Containers are listed first: images count the ones using them.
        let containers = st
            .reports
            .containers
            .get()
            .map(|c| c.disk_usage())
            .unwrap_or_default();
        if want_images {
            let opts = berth_images::query::ListOptions {
                all: false,
                shared_size: true,
                filters: Default::default(),
            };
            let images = st
                .images
                .list(&opts)
                .map_err(|e| ApiError::from_internal("listing images", e))?;
            let layers = st
                .images
                .layers_size()
                .map_err(|e| ApiError::from_internal("measuring layers", e))?;
            let mut images = json!(images);
            for image in images.as_array_mut().into_iter().flatten() {
                let users = containers
                    .iter()
                    .filter(|c| c["ImageID"] == image["Id"])
                    .count();
                image["Containers"] = json!(users);
            }
            out.insert("LayersSize".into(), json!(layers));
            out.insert("Images".into(), images);
        }
        if want_containers {
            out.insert("Containers".into(), json!(containers));
        }
        if want_volumes {
            let list = st
                .reports
                .volumes
                .get()
                .map(|v| v.disk_usage())
                .unwrap_or_default();
            out.insert("Volumes".into(), json!(list));
        }
        Ok(Value::Object(out))
    })
    .await
    .map_err(|e| ApiError::from_internal("computing disk usage", e))??;
    if want_cache {
        // Records only: the space is in the step images, counted there.
        out["BuildCache"] = json!(state.builder.disk_usage());
        out["BuilderSize"] = json!(0);
    }
    Ok(Json(out))
}
