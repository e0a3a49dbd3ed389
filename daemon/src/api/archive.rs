//! `docker cp`: `GET|HEAD|PUT /containers/{id}/archive`.

use std::io::{self, Read, Write};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use base64::Engine;
use http_body_util::BodyExt;
use tokio::sync::{mpsc, oneshot};

use super::error::{ApiError, ApiResult};
use super::extract::QueryParams;
use crate::containers::archive::container::ContainerFs;
use crate::containers::archive::{self, ArchiveError, ExtractOptions, PathStat};
use crate::containers::core::{Container, Containers};
use crate::daemon::AppState;

const STAT_HEADER: &str = "X-Docker-Container-Path-Stat";

pub fn routes() -> Router<AppState> {
    Router::new().route(
        "/containers/{id}/archive",
        get(get_archive).head(head_archive).put(put_archive),
    )
}

fn map_err(e: ArchiveError, path: &str, container: &str) -> ApiError {
    match e {
        ArchiveError::NotFound => ApiError::not_found(format!(
            "Could not find the file {path} in container {container}"
        )),
        ArchiveError::NotADirectory => ApiError::bad_request("extraction point is not a directory"),
        ArchiveError::ReadOnly(m) => ApiError::forbidden(m),
        ArchiveError::BadArchive(m) => ApiError::bad_request(m),
        // Symlinks inside the container can still make the resolved path
        // too long or loop: the caller's path, not the daemon, is at fault.
        ArchiveError::Io { ref source, .. }
            if matches!(
                source.raw_os_error(),
                Some(libc::ENAMETOOLONG | libc::ELOOP)
            ) =>
        {
            ApiError::bad_request(format!("invalid path {path}: {source}"))
        }
        e @ (ArchiveError::Io { .. } | ArchiveError::Internal(_)) => {
            ApiError::internal(e.to_string())
        }
    }
}

/// Longest path the kernel takes (PATH_MAX, with its NUL) and longest
/// component (NAME_MAX).
const PATH_MAX: usize = 4096;
const NAME_MAX: usize = 255;

fn required_path(q: &QueryParams) -> ApiResult<String> {
    let p = match q.get("path") {
        Some(p) if !p.is_empty() => p,
        _ => return Err(ApiError::bad_request("path cannot be empty")),
    };
    if p.contains('\0') {
        return Err(ApiError::bad_request("invalid path: contains a NUL byte"));
    }
    if p.len() >= PATH_MAX {
        return Err(ApiError::bad_request(format!(
            "invalid path: {} bytes long, the maximum is {}",
            p.len(),
            PATH_MAX - 1
        )));
    }
    if p.split('/').any(|c| c.len() > NAME_MAX) {
        return Err(ApiError::bad_request(format!(
            "invalid path: a file name is longer than {NAME_MAX} bytes"
        )));
    }
    Ok(p.to_string())
}

fn container(state: &AppState, reference: &str) -> ApiResult<(Arc<Containers>, Arc<Container>)> {
    let containers = state.containers.clone();
    let c = containers.get(reference).map_err(ApiError::from)?;
    Ok((containers, c))
}

/// Run `work` on a blocking thread with the container's file system open.
/// A stopped container's rootfs is mounted for the duration, under its
/// operation lock, so it cannot start meanwhile.
async fn with_fs<T: Send + 'static>(
    containers: Arc<Containers>,
    c: Arc<Container>,
    work: impl FnOnce(&ContainerFs) -> Result<T, ArchiveError> + Send + 'static,
) -> Result<T, ArchiveError> {
    let rec = c.snapshot();
    let live = rec.state.status.is_live();
    let _op = if live { None } else { Some(c.op.lock().await) };
    if !live {
        containers.exit_cleanup_done(&c).await;
    }
    // Re-read: it may have started while we waited for the lock.
    let rec = if live { rec } else { c.snapshot() };
    let live = rec.state.status.is_live();
    tokio::task::spawn_blocking(move || {
        let fs = ContainerFs::open(&containers, &rec, live)?;
        work(&fs)
    })
    .await
    .map_err(|e| ArchiveError::Internal(format!("copy task failed: {e}")))?
}

fn stat_header(stat: &PathStat) -> ApiResult<HeaderValue> {
    let json = serde_json::to_vec(stat)
        .map_err(|e| ApiError::from_internal("encoding the path stat", e))?;
    HeaderValue::from_str(&base64::engine::general_purpose::STANDARD.encode(json))
        .map_err(|e| ApiError::from_internal("encoding the path stat", e))
}

/// A response with the path stat header and the given content type.
fn stat_response(body: Body, stat: &PathStat, content_type: &'static str) -> ApiResult<Response> {
    let mut resp = Response::new(body);
    resp.headers_mut().insert(STAT_HEADER, stat_header(stat)?);
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(resp)
}

async fn head_archive(
    State(state): State<AppState>,
    Path(id): Path<String>,
    q: QueryParams,
) -> ApiResult<Response> {
    let path = required_path(&q)?;
    let (containers, c) = container(&state, &id)?;
    let p = path.clone();
    let stat = with_fs(containers, c, move |fs| archive::stat_path(&fs.view, &p))
        .await
        .map_err(|e| map_err(e, &path, &id))?;
    stat_response(Body::empty(), &stat, "application/json")
}

async fn get_archive(
    State(state): State<AppState>,
    Path(id): Path<String>,
    q: QueryParams,
) -> ApiResult<Response> {
    let path = required_path(&q)?;
    let (containers, c) = container(&state, &id)?;
    let (stat_tx, stat_rx) = oneshot::channel::<Result<PathStat, ArchiveError>>();
    let (body_tx, body_rx) = mpsc::channel::<Bytes>(16);
    let p = path.clone();
    let task_containers = containers.clone();
    let task_c = c.clone();
    tokio::spawn(async move {
        let result = with_fs(task_containers, task_c, move |fs| {
            let (stat, prepared) = match archive::prepare_archive(&fs.view, &p) {
                Ok(v) => v,
                Err(e) => {
                    let _ = stat_tx.send(Err(e));
                    return Ok(());
                }
            };
            if stat_tx.send(Ok(stat)).is_err() {
                return Ok(());
            }
            let mut w = prepared.write(&fs.view, ChannelWriter::new(body_tx))?;
            w.flush().map_err(ArchiveError::io("sending the archive"))
        })
        .await;
        if let Err(e) = result {
            // Headers are gone already: all we can do is end the body early.
            tracing::warn!(error = %e, "archive stream ended early");
        }
    });
    let stat = match stat_rx.await {
        Ok(Ok(stat)) => stat,
        Ok(Err(e)) => return Err(map_err(e, &path, &id)),
        Err(_) => return Err(ApiError::internal("the copy task ended without an answer")),
    };
    containers.publish(&c.snapshot(), "archive-path");
    let stream = futures_util::stream::unfold(body_rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, std::convert::Infallible>(chunk), rx))
    });
    stat_response(Body::from_stream(stream), &stat, "application/x-tar")
}

async fn put_archive(
    State(state): State<AppState>,
    Path(id): Path<String>,
    q: QueryParams,
    body: Body,
) -> ApiResult<Response> {
    let path = required_path(&q)?;
    let (containers, c) = container(&state, &id)?;
    let no_overwrite = q.bool("noOverwriteDirNonDir");
    let copy_uid_gid = q.bool("copyUIDGID");
    let rec = c.snapshot();
    let user = rec.config.user.clone();
    let read_only_rootfs = rec.host_config.readonly_rootfs;
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let p = path.clone();
    let extraction = with_fs(containers.clone(), c.clone(), move |fs| {
        let dest = archive::prepare_extract(&fs.view, &p, read_only_rootfs)?;
        let chown = if copy_uid_gid && !user.is_empty() {
            Some(fs.lookup_user(&user)?)
        } else {
            None
        };
        let opts = ExtractOptions {
            no_overwrite_dir_non_dir: no_overwrite,
            chown,
        };
        archive::extract(&fs.view, &dest, ChannelReader::new(rx), opts)
    });
    let feed = async move {
        let mut body = body;
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { break };
            if let Ok(data) = frame.into_data() {
                if tx.send(data).await.is_err() {
                    // The extraction stopped (finished or failed).
                    break;
                }
            }
        }
    };
    let (result, ()) = tokio::join!(extraction, feed);
    result.map_err(|e| map_err(e, &path, &id))?;
    containers.publish(&c.snapshot(), "extract-to-dir");
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::OK;
    Ok(resp)
}

/// A blocking `Write` feeding an async response body.
struct ChannelWriter {
    tx: mpsc::Sender<Bytes>,
    buf: Vec<u8>,
}

const CHUNK: usize = 64 * 1024;

impl ChannelWriter {
    fn new(tx: mpsc::Sender<Bytes>) -> Self {
        ChannelWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        }
    }

    fn send_buf(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(chunk)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send_buf()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_buf()
    }
}

/// A blocking `Read` over an async request body.
struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    cur: Bytes,
}

impl ChannelReader {
    fn new(rx: mpsc::Receiver<Bytes>) -> Self {
        ChannelReader {
            rx,
            cur: Bytes::new(),
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.cur = chunk,
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.cur.len());
        out[..n].copy_from_slice(&self.cur[..n]);
        self.cur = self.cur.slice(n..);
        Ok(n)
    }
}
