//! `GET /containers/{id}/attach/ws` (the container's stdio over a
//! websocket) and `POST /containers/{id}/resize` (its terminal size).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::header::{CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use berth_common::shim::{Request as ShimRequest, STREAM_STDERR, STREAM_STDOUT};
use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::error::{ApiError, ApiResult};
use super::extract::QueryParams;
use super::version::ApiVersion;
use crate::containers::exec::detach::{self, DetachScanner, Scan};
use crate::containers::exec::relay::FrameParser;
use crate::containers::record::Status;
use crate::containers::Containers;
use crate::daemon::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/containers/{id}/attach/ws", get(attach_ws))
        .route("/containers/{id}/resize", post(resize))
}

fn header_has(req: &Request, name: axum::http::HeaderName, token: &str) -> bool {
    req.headers().get_all(name).iter().any(|v| {
        v.to_str()
            .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

async fn resize(
    State(state): State<AppState>,
    Path(id): Path<String>,
    q: QueryParams,
) -> ApiResult<Response> {
    let c = state.containers.get(&id).map_err(ApiError::from)?;
    let h = q.i64("h")?.unwrap_or(0);
    let w = q.i64("w")?.unwrap_or(0);
    let (Ok(height), Ok(width)) = (u16::try_from(h), u16::try_from(w)) else {
        return Err(ApiError::bad_request(
            "invalid terminal size: height and width must be between 0 and 65535",
        ));
    };
    let rec = c.snapshot();
    if !rec.state.status.is_live() {
        return Err(ApiError::conflict(format!(
            "Container {} is not running",
            rec.id
        )));
    }
    // Without a TTY there is nothing to resize: dockerd (containerd's shim)
    // answers 200 all the same.
    if rec.config.tty {
        state
            .containers
            .shim(&rec.id)
            .call(&ShimRequest::Resize { width, height })
            .await
            .map_err(|e| ApiError::internal(format!("resizing the terminal of {}: {e}", rec.id)))?;
    }
    let event = state
        .containers
        .event(&rec, "resize")
        .attr("height", height.to_string())
        .attr("width", width.to_string());
    state.containers.events.publish(event);
    Ok(StatusCode::OK.into_response())
}

#[derive(Debug, Clone)]
struct WsAttach {
    /// Replay the container's log first.
    logs: bool,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
    detach_keys: Vec<u8>,
    /// Binary frames (API ≥ 1.42), text frames before.
    binary: bool,
}

async fn attach_ws(
    State(state): State<AppState>,
    Path(id): Path<String>,
    version: ApiVersion,
    q: QueryParams,
    mut req: Request,
) -> ApiResult<Response> {
    let c = state.containers.get(&id).map_err(ApiError::from)?;
    let key = req.headers().get(SEC_WEBSOCKET_KEY).cloned();
    let is_ws = header_has(&req, CONNECTION, "upgrade") && header_has(&req, UPGRADE, "websocket");
    let (Some(key), true) = (key, is_ws) else {
        return Err(ApiError::bad_request(
            "this endpoint needs a websocket upgrade request",
        ));
    };
    let Some(on_upgrade) = req.extensions_mut().remove::<OnUpgrade>() else {
        return Err(ApiError::bad_request("the connection cannot be upgraded"));
    };
    let keys = q.get("detachKeys").unwrap_or("");
    let detach_keys = detach::parse(keys).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let rec = c.snapshot();
    if rec.state.status != Status::Running {
        return Err(ApiError::conflict(format!(
            "Container {} is not running",
            rec.id
        )));
    }
    let opts = WsAttach {
        logs: q.bool("logs"),
        stdin: q.bool("stdin"),
        stdout: q.bool("stdout"),
        stderr: q.bool("stderr"),
        tty: rec.config.tty,
        detach_keys,
        binary: version.at_least(1, 42),
    };
    let containers = state.containers.clone();
    let cid = rec.id.clone();
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let ws =
                    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None)
                        .await;
                serve(containers, cid, opts, ws).await;
            }
            Err(e) => tracing::warn!(error = %e, "websocket upgrade failed"),
        }
    });
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    let accept = derive_accept_key(key.as_bytes());
    h.insert(
        SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept)
            .map_err(|e| ApiError::from_internal("websocket accept key", e))?,
    );
    Ok(resp)
}

/// The container's log so far as raw chunks (websocket attach never
/// multiplexes), for `logs=1`.
async fn replay_logs(containers: &Containers, id: &str, opts: &WsAttach) -> Vec<Vec<u8>> {
    use crate::containers::logs::{self, LogRequest, Selection, Sink};
    struct Collect(Vec<Vec<u8>>);
    impl Sink for Collect {
        fn send(&mut self, chunk: Vec<u8>) -> bool {
            self.0.push(chunk);
            true
        }
        fn is_closed(&self) -> bool {
            false
        }
    }
    let path = containers.settings.log_path(id);
    let request = LogRequest {
        selection: Selection {
            stdout: opts.stdout,
            stderr: opts.stderr,
            // Raw bytes, whatever the container's TTY setting.
            tty: true,
            ..Default::default()
        },
        tail: None,
        follow: false,
    };
    tokio::task::spawn_blocking(move || {
        let mut sink = Collect(Vec::new());
        if let Err(e) = logs::stream(&path, &request, &mut sink, &|| false) {
            tracing::warn!(path = %path.display(), error = %e, "replaying logs on a websocket attach");
        }
        sink.0
    })
    .await
    .unwrap_or_default()
}

/// Relay websocket messages to the shim's attach and its output back, as
/// raw bytes (websocket attach never multiplexes).
async fn serve<S>(containers: Arc<Containers>, id: String, opts: WsAttach, ws: WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
{
    let (mut ws_tx, mut ws_rx) = ws.split();
    if opts.logs {
        for chunk in replay_logs(&containers, &id, &opts).await {
            let msg = if opts.binary {
                Message::binary(chunk)
            } else {
                Message::text(String::from_utf8_lossy(&chunk).into_owned())
            };
            if ws_tx.send(msg).await.is_err() {
                return;
            }
        }
    }
    let shim = containers.shim(&id);
    let req = ShimRequest::Attach {
        stdin: opts.stdin,
        stdout: opts.stdout,
        stderr: opts.stderr,
    };
    let conn = match shim.open(&req).await {
        Ok((resp, conn)) if resp.ok => conn,
        Ok((resp, _)) => {
            tracing::warn!(%id, error = ?resp.error, "shim refused the websocket attach");
            let _ = ws_tx.close().await;
            return;
        }
        Err(e) => {
            tracing::warn!(%id, error = %e, "websocket attach");
            let _ = ws_tx.close().await;
            return;
        }
    };
    if let Ok(c) = containers.get(&id) {
        containers.publish(&c.snapshot(), "attach");
    }
    let mut reader = conn.reader;
    let mut writer = conn.writer;
    let mut scanner = DetachScanner::new(opts.detach_keys.clone());
    let mut parser = FrameParser::default();
    let mut buf = vec![0u8; 64 * 1024];
    let mut reading_ws = true;
    loop {
        tokio::select! {
            msg = ws_rx.next(), if reading_ws => {
                let data = match msg {
                    Some(Ok(Message::Binary(b))) => b.to_vec(),
                    Some(Ok(Message::Text(t))) => t.as_bytes().to_vec(),
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                        reading_ws = false;
                        let _ = writer.shutdown().await;
                        continue;
                    }
                };
                if !opts.stdin {
                    continue;
                }
                let (data, detached) = match scanner.feed(&data) {
                    Scan::Forward(d) => (d, false),
                    Scan::Detach(d) => (d, true),
                };
                if !data.is_empty() && writer.write_all(&data).await.is_err() {
                    reading_ws = false;
                }
                if detached {
                    break;
                }
            }
            r = reader.read(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    parser.push(&buf[..n]);
                    while let Some((stream, payload)) = parser.next_frame() {
                        let wanted = (opts.tty && (opts.stdout || opts.stderr))
                            || (stream == STREAM_STDOUT && opts.stdout)
                            || (stream == STREAM_STDERR && opts.stderr);
                        if !wanted || payload.is_empty() {
                            continue;
                        }
                        let msg = if opts.binary {
                            Message::binary(payload)
                        } else {
                            Message::text(String::from_utf8_lossy(&payload).into_owned())
                        };
                        if ws_tx.send(msg).await.is_err() {
                            return;
                        }
                    }
                }
            },
        }
    }
    // Closing handshake: send our close, give the client a moment to answer.
    let _ = ws_tx.close().await;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
        while let Some(Ok(msg)) = ws_rx.next().await {
            if msg.is_close() {
                break;
            }
        }
    })
    .await;
}
