//! Exec endpoints: create, start (hijacked stream or detached), resize,
//! inspect.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use berth_common::shim::Request;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use super::error::{ApiError, ApiResult};
use super::extract::{OptionalJsonBody, QueryParams};
use super::stream::{Hijack, HijackedIo};
use super::version::ApiVersion;
use crate::containers::core::{Container, Containers};
use crate::containers::exec::relay::{self, RelayEnd, RelayOptions};
use crate::containers::exec::{self, detach, Exec, ExecConfig};
use crate::containers::record::{ContainerRecord, Status};
use crate::daemon::AppState;

/// How long a finished stream waits for the exit code before closing.
const EXIT_GRACE: Duration = Duration::from_secs(10);

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/containers/{id}/exec", post(create))
        .route("/exec/{id}/start", post(start))
        .route("/exec/{id}/resize", post(resize))
        .route("/exec/{id}/json", get(inspect))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct CreateBody {
    attach_stdin: bool,
    attach_stdout: bool,
    attach_stderr: bool,
    console_size: Option<Vec<u16>>,
    detach_keys: String,
    tty: bool,
    env: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    privileged: bool,
    user: String,
    working_dir: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct StartBody {
    detach: bool,
    /// Raw or multiplexed output (dockerd goes by this, not by the
    /// exec's own `Tty`).
    tty: bool,
    console_size: Option<Vec<u16>>,
}

fn console_size(v: &Option<Vec<u16>>) -> ApiResult<Option<(u16, u16)>> {
    match v.as_deref() {
        None | Some([]) => Ok(None),
        Some([h, w]) => Ok(Some((*h, *w))),
        Some(_) => Err(ApiError::bad_request(
            "ConsoleSize must have exactly two values: height and width",
        )),
    }
}

/// 409 unless the container can run an exec, with dockerd's wording.
fn check_running(rec: &ContainerRecord) -> ApiResult<()> {
    match rec.state.status {
        Status::Running => Ok(()),
        Status::Paused => Err(ApiError::conflict(format!(
            "Container {} is paused, unpause the container before exec",
            rec.id
        ))),
        Status::Restarting => Err(ApiError::conflict(format!(
            "Container {} is restarting, wait until the container is running",
            rec.id
        ))),
        _ => Err(ApiError::conflict(format!(
            "Container {} is not running",
            rec.id
        ))),
    }
}

fn get_container(state: &AppState, reference: &str) -> ApiResult<Arc<Container>> {
    state.containers.get(reference).map_err(ApiError::from)
}

/// The exec `id`, while its container exists (a removed container's
/// execs are dropped here, as dockerd drops them with it).
fn get_exec(state: &AppState, id: &str) -> ApiResult<Arc<Exec>> {
    let not_found = || ApiError::not_found(format!("No such exec instance: {id}"));
    let e = exec::store().get(id).ok_or_else(not_found)?;
    if state.containers.get(&e.container_id).is_err() {
        exec::store().remove_container(&e.container_id);
        return Err(not_found());
    }
    Ok(e)
}

/// `exec_create: sh -c x`, as dockerd names these events.
fn event_action(kind: &str, cfg: &ExecConfig) -> String {
    format!("{kind}: {}", cfg.cmd.join(" "))
        .trim_end()
        .to_string()
}

fn publish(
    containers: &Containers,
    container_id: &str,
    exec: &Exec,
    action: String,
    exit: Option<i32>,
) {
    let Ok(c) = containers.get(container_id) else {
        return;
    };
    let rec = c.snapshot();
    let mut ev = containers
        .event(&rec, &action)
        .attr("execID", exec.id.clone());
    if let Some(code) = exit {
        ev = ev.attr("exitCode", code.to_string());
    }
    containers.events.publish(ev);
}

async fn create(
    State(state): State<AppState>,
    Path(id): Path<String>,
    OptionalJsonBody(body): OptionalJsonBody<CreateBody>,
) -> ApiResult<Response> {
    let body = body.unwrap_or_default();
    let c = get_container(&state, &id)?;
    let rec = c.snapshot();
    check_running(&rec)?;
    let cmd = body.cmd.unwrap_or_default();
    if cmd.is_empty() {
        return Err(ApiError::bad_request("No exec command specified"));
    }
    detach::parse(&body.detach_keys).map_err(|e| ApiError::bad_request(e.to_string()))?;
    // A NUL byte cannot reach execve or chdir.
    let env = body.env.as_deref().unwrap_or_default();
    if cmd
        .iter()
        .chain(env)
        .chain([&body.working_dir, &body.user])
        .any(|v| v.contains('\0'))
    {
        return Err(ApiError::bad_request(
            "invalid exec configuration: a value contains a NUL byte",
        ));
    }
    if !body.working_dir.is_empty() && !body.working_dir.starts_with('/') {
        return Err(ApiError::bad_request(format!(
            "the working directory '{}' is invalid, it needs to be an absolute path",
            body.working_dir
        )));
    }
    let cfg = ExecConfig {
        cmd,
        env: body.env.unwrap_or_default(),
        working_dir: body.working_dir,
        user: body.user,
        privileged: body.privileged,
        tty: body.tty,
        attach_stdin: body.attach_stdin,
        attach_stdout: body.attach_stdout,
        attach_stderr: body.attach_stderr,
        detach_keys: body.detach_keys,
        console_size: console_size(&body.console_size)?,
    };
    let e = exec::store().create(&rec.id, cfg);
    publish(
        &state.containers,
        &rec.id,
        &e,
        event_action("exec_create", &e.config),
        None,
    );
    Ok((StatusCode::CREATED, Json(json!({ "Id": e.id }))).into_response())
}

/// The OCI process for `e` from the running container's bundle.
async fn build_process(
    containers: &Containers,
    rec: &ContainerRecord,
    e: &Exec,
    size: Option<(u16, u16)>,
) -> Result<Value, String> {
    let mut cfg = e.config.clone();
    if size.is_some() {
        cfg.console_size = size;
    }
    exec::bundle::process_for(containers, rec, &cfg).await
}

/// Wait for the exec's exit through the shim and record it once.
async fn watch_exit(containers: Arc<Containers>, container_id: String, e: Arc<Exec>) {
    let shim = containers.shim(&container_id);
    let code = match shim
        .open(&Request::ExecWait {
            exec_id: e.id.clone(),
        })
        .await
    {
        Ok((resp, _)) if resp.ok => resp.exit.map(|x| x.exit_code).unwrap_or(-1),
        Ok((resp, _)) => {
            tracing::warn!(exec = %e.id, error = ?resp.error, "waiting for an exec");
            -1
        }
        Err(err) => {
            tracing::warn!(exec = %e.id, error = %err, "waiting for an exec");
            -1
        }
    };
    if e.finish(code) {
        publish(
            &containers,
            &container_id,
            &e,
            "exec_die".to_string(),
            Some(code),
        );
    }
}

async fn start(
    State(state): State<AppState>,
    Path(id): Path<String>,
    version: ApiVersion,
    hijack: Hijack,
    OptionalJsonBody(body): OptionalJsonBody<StartBody>,
) -> ApiResult<Response> {
    let body = body.unwrap_or_default();
    let e = get_exec(&state, &id)?;
    let containers = state.containers.clone();
    let c = match containers.get(&e.container_id) {
        Ok(c) => c,
        Err(_) => {
            exec::store().remove_container(&e.container_id);
            return Err(ApiError::not_found(format!("No such exec instance: {id}")));
        }
    };
    let rec = c.snapshot();
    check_running(&rec)?;
    // As dockerd: no console size without a terminal.
    let size = console_size(&body.console_size)?.filter(|_| body.tty);
    e.begin_start()
        .map_err(|err| ApiError::conflict(err.to_string()))?;
    let cfg = &e.config;
    let detached = body.detach || !(cfg.attach_stdin || cfg.attach_stdout || cfg.attach_stderr);

    if detached {
        let process = build_process(&containers, &rec, &e, size)
            .await
            .map_err(|msg| {
                e.finish(126);
                ApiError::internal(msg)
            })?;
        let shim = containers.shim(&rec.id);
        let req = Request::Exec {
            exec_id: e.id.clone(),
            process,
            detach: true,
        };
        match shim.open(&req).await {
            Ok((resp, _)) if resp.ok => {
                e.set_running(resp.pid.unwrap_or(0));
                publish(
                    &containers,
                    &rec.id,
                    &e,
                    event_action("exec_start", cfg),
                    None,
                );
                tokio::spawn(watch_exit(containers.clone(), rec.id.clone(), e.clone()));
                Ok(StatusCode::OK.into_response())
            }
            Ok((resp, _)) => {
                let (msg, code) =
                    exec::start_failure(resp.error.as_deref().unwrap_or("unknown error"));
                if e.finish(code) {
                    publish(&containers, &rec.id, &e, "exec_die".into(), Some(code));
                }
                Err(ApiError::internal(msg))
            }
            Err(err) => {
                e.finish(126);
                Err(ApiError::from_internal("starting the exec", err))
            }
        }
    } else {
        let raw = body.tty;
        let content_type = hijack.content_type(raw, version);
        Ok(hijack.respond(content_type, move |io| {
            run_attached(containers, rec, e, size, raw, io)
        }))
    }
}

/// Write an error into the client's stream the way dockerd does after the
/// connection was hijacked: on stdout, followed by CRLF.
async fn stream_error(io: &mut HijackedIo, tty: bool, msg: &str) {
    let text = format!("{msg}\r\n");
    let data = if tty {
        text.into_bytes()
    } else {
        super::stream::frame(berth_common::shim::STREAM_STDOUT, text.as_bytes()).to_vec()
    };
    let _ = io.write_all(&data).await;
    let _ = io.flush().await;
    let _ = io.shutdown().await;
}

async fn run_attached(
    containers: Arc<Containers>,
    rec: ContainerRecord,
    e: Arc<Exec>,
    size: Option<(u16, u16)>,
    raw: bool,
    mut io: HijackedIo,
) {
    let cfg = e.config.clone();
    let fail = |code: i32| {
        if e.finish(code) {
            publish(&containers, &rec.id, &e, "exec_die".into(), Some(code));
        }
    };
    let process = match build_process(&containers, &rec, &e, size).await {
        Ok(p) => p,
        Err(msg) => {
            fail(126);
            return stream_error(&mut io, raw, &msg).await;
        }
    };
    let shim = containers.shim(&rec.id);
    let req = Request::Exec {
        exec_id: e.id.clone(),
        process,
        detach: false,
    };
    let conn = match shim.open(&req).await {
        Ok((resp, conn)) if resp.ok => {
            e.set_running(resp.pid.unwrap_or(0));
            conn
        }
        Ok((resp, _)) => {
            let (msg, code) = exec::start_failure(resp.error.as_deref().unwrap_or("unknown error"));
            fail(code);
            return stream_error(&mut io, raw, &msg).await;
        }
        Err(err) => {
            fail(126);
            return stream_error(&mut io, raw, &format!("starting the exec: {err}")).await;
        }
    };
    publish(
        &containers,
        &rec.id,
        &e,
        event_action("exec_start", &cfg),
        None,
    );
    tokio::spawn(watch_exit(containers.clone(), rec.id.clone(), e.clone()));
    let detach_keys = if cfg.attach_stdin && cfg.tty {
        detach::parse(&cfg.detach_keys).ok()
    } else {
        None
    };
    let opts = RelayOptions {
        tty: cfg.tty,
        raw,
        stdin: cfg.attach_stdin,
        stdout: cfg.attach_stdout,
        stderr: cfg.attach_stderr,
        detach_keys,
    };
    let (end, mut client_w, shim_r, shim_w) =
        relay::relay(io, conn.reader, conn.writer, opts).await;
    match end {
        RelayEnd::OutputEnded => {
            // The client reads the exit code right after the stream ends.
            let _ = tokio::time::timeout(EXIT_GRACE, e.wait_exited()).await;
            let _ = client_w.shutdown().await;
        }
        RelayEnd::Detached | RelayEnd::ClientGone => {
            if end == RelayEnd::Detached {
                publish(&containers, &rec.id, &e, "exec_detach".to_string(), None);
            }
            let _ = client_w.shutdown().await;
            drop(client_w);
            // Keep the process's stdin open and its output drained: it
            // runs on without a client.
            let _keep_stdin = shim_w;
            relay::drain(shim_r).await;
        }
    }
}

async fn resize(
    Path(id): Path<String>,
    State(state): State<AppState>,
    q: QueryParams,
) -> ApiResult<Response> {
    let e = get_exec(&state, &id)?;
    let h = q.i64("h")?.unwrap_or(0);
    let w = q.i64("w")?.unwrap_or(0);
    let (Ok(height), Ok(width)) = (u16::try_from(h), u16::try_from(w)) else {
        return Err(ApiError::bad_request(
            "invalid terminal size: height and width must be between 0 and 65535",
        ));
    };
    if !e.state().running {
        return Err(ApiError::conflict(format!("exec {id} is not running")));
    }
    let shim = state.containers.shim(&e.container_id);
    shim.call(&Request::ExecResize {
        exec_id: e.id.clone(),
        width,
        height,
    })
    .await
    .map_err(|err| ApiError::internal(format!("resizing the exec terminal: {err}")))?;
    Ok(StatusCode::OK.into_response())
}

async fn inspect(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let e = get_exec(&state, &id)?;
    let st = e.state();
    let cfg = &e.config;
    let (entrypoint, arguments) = match cfg.cmd.split_first() {
        Some((first, rest)) => (first.clone(), rest.to_vec()),
        None => (String::new(), Vec::new()),
    };
    Ok(Json(json!({
        "CanRemove": false,
        "ContainerID": e.container_id,
        "DetachKeys": cfg.detach_keys,
        "ExitCode": st.exit_code,
        "ID": e.id,
        "OpenStderr": cfg.attach_stderr,
        "OpenStdin": cfg.attach_stdin,
        "OpenStdout": cfg.attach_stdout,
        "ProcessConfig": {
            "arguments": arguments,
            "entrypoint": entrypoint,
            "privileged": cfg.privileged,
            "tty": cfg.tty,
            "user": cfg.user,
        },
        "Running": st.running,
        "Pid": st.pid,
    })))
}
