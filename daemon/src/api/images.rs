//! Image endpoints over `berth_images::ImageStore`. The store is
//! synchronous; every call that touches the disk runs on the blocking pool.
//!
//! Image names contain `/`, so `/images/{name}/json` and friends are served
//! by one catch-all per method that splits off the action suffix, as
//! dockerd does.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use berth_distribution::progress_bar;
use berth_images::import::ImportOptions;
use berth_images::load::LoadProgress;
use berth_images::modify::repo_tag_reference;
use berth_images::query::ListOptions;
use berth_images::{Digest, ErrorKind, ImageEvents, ImageStore};

use super::error::{ApiError, ApiResult};
use super::extract::{Filters, QueryParams};
use super::stream::{json_progress, json_progress_always, streaming_response, ChunkSender};
use super::version::ApiVersion;
use crate::daemon::AppState;
use crate::events::{Event, EventType, Events};

impl From<berth_images::Error> for ApiError {
    fn from(e: berth_images::Error) -> Self {
        let msg = e.to_string();
        match e.kind() {
            ErrorKind::NotFound => ApiError::not_found(msg),
            ErrorKind::InvalidArgument => ApiError::bad_request(msg),
            ErrorKind::Conflict => ApiError::conflict(msg),
            ErrorKind::NotImplemented => ApiError::not_implemented(msg),
            ErrorKind::Internal => ApiError::internal(msg),
        }
    }
}

/// Publishes the store's image events on the daemon's bus.
pub struct ImageEventSink(pub Events);

impl ImageEvents for ImageEventSink {
    fn image_event(&self, action: &str, id: &Digest, name: &str) {
        self.0
            .publish(Event::new(EventType::Image, action, id.to_string()).attr("name", name));
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/images/json", get(list))
        .route("/images/load", post(load))
        .route("/images/get", get(save_many))
        .route("/images/create", post(create))
        .route("/images/prune", post(prune))
        .route("/images/{*rest}", get(get_named).post(post_named))
        .route("/images/{*rest}", delete(remove))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> berth_images::Result<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::from_internal("image store task", e))?
        .map_err(ApiError::from)
}

fn store(state: &AppState) -> Arc<ImageStore> {
    state.images.clone()
}

fn library_filters(f: &Filters, keys: &[&str]) -> HashMap<String, Vec<String>> {
    keys.iter()
        .filter(|k| f.contains(k))
        .map(|k| (k.to_string(), f.get(k).to_vec()))
        .collect()
}

async fn list(
    State(state): State<AppState>,
    version: ApiVersion,
    q: QueryParams,
) -> ApiResult<Json<Value>> {
    let filters = q.filters()?;
    let keys = ["dangling", "label", "before", "since", "reference", "until"];
    filters.validate(&keys)?;
    let opts = ListOptions {
        all: q.bool("all"),
        shared_size: q.bool("shared-size"),
        filters: library_filters(&filters, &keys),
    };
    let st = store(&state);
    let list = blocking(move || st.list(&opts)).await?;
    let mut out = serde_json::to_value(list).map_err(|e| ApiError::from_internal("encode", e))?;
    if !version.at_least(1, 44) {
        if let Some(items) = out.as_array_mut() {
            for item in items {
                item["VirtualSize"] = item["Size"].clone();
            }
        }
    }
    Ok(Json(out))
}

/// Split `/images/<name>/<action>` for the catch-all routes.
fn split_action<'a>(rest: &'a str, actions: &[&str]) -> Option<(&'a str, &'a str)> {
    let (name, action) = rest.rsplit_once('/')?;
    (actions.contains(&action) && !name.is_empty()).then_some((name, action))
}

async fn get_named(
    State(state): State<AppState>,
    version: ApiVersion,
    Path(rest): Path<String>,
) -> ApiResult<Response> {
    let Some((name, action)) = split_action(&rest, &["json", "history", "get"]) else {
        return Err(ApiError::not_found("page not found"));
    };
    let name = name.to_owned();
    let st = store(&state);
    match action {
        "json" => {
            let mut v = blocking(move || st.inspect(&name)).await?;
            if !version.at_least(1, 44) {
                v["VirtualSize"] = v["Size"].clone();
            }
            Ok(Json(v).into_response())
        }
        "history" => {
            let h = blocking(move || st.history(&name)).await?;
            Ok(Json(h).into_response())
        }
        _ => save_response(st, vec![name]).await,
    }
}

async fn post_named(
    State(state): State<AppState>,
    Path(rest): Path<String>,
    q: QueryParams,
    headers: HeaderMap,
    ext: axum::http::Extensions,
) -> ApiResult<Response> {
    let Some((name, action)) = split_action(&rest, &["tag", "push"]) else {
        return Err(ApiError::not_found("page not found"));
    };
    if action == "push" {
        let client = super::client_watch::ClientWatch::of(&ext);
        return super::distribution::push(state, name, &q, &headers, client).await;
    }
    let target = repo_tag_reference(q.get("repo").unwrap_or(""), q.get("tag").unwrap_or(""))?;
    let name = name.to_owned();
    let st = store(&state);
    blocking(move || st.tag(&name, &target)).await?;
    Ok(axum::http::StatusCode::CREATED.into_response())
}

async fn remove(
    State(state): State<AppState>,
    Path(rest): Path<String>,
    q: QueryParams,
) -> ApiResult<Json<Value>> {
    let force = q.bool("force");
    let prune = !q.bool("noprune");
    let st = store(&state);
    let items = blocking(move || st.delete(&rest, force, prune)).await?;
    Ok(Json(
        serde_json::to_value(items).map_err(|e| ApiError::from_internal("encode", e))?,
    ))
}

async fn prune(State(state): State<AppState>, q: QueryParams) -> ApiResult<Json<Value>> {
    let filters = q.filters()?;
    let keys = ["dangling", "label", "label!", "until"];
    filters.validate(&keys)?;
    let f = library_filters(&filters, &keys);
    let st = store(&state);
    let report = blocking(move || st.prune(&f)).await?;
    state.events.publish(
        Event::new(EventType::Image, "prune", "")
            .attr("reclaimed", report.space_reclaimed.to_string()),
    );
    Ok(Json(json!({
        "ImagesDeleted": report.images_deleted,
        "SpaceReclaimed": report.space_reclaimed,
    })))
}

/// A blocking `Read` over the request body, fed by an async task.
struct BodyReader {
    rx: mpsc::Receiver<Result<Bytes, String>>,
    cur: Bytes,
}

impl BodyReader {
    fn spawn(body: Body) -> BodyReader {
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            let mut stream = body.into_data_stream();
            while let Some(chunk) = stream.next().await {
                let item = chunk.map_err(|e| e.to_string());
                let stop = item.is_err();
                if tx.send(item).await.is_err() || stop {
                    break;
                }
            }
        });
        BodyReader {
            rx,
            cur: Bytes::new(),
        }
    }
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(io::Error::other(format!("reading request body: {e}"))),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        self.cur = self.cur.slice(n..);
        Ok(n)
    }
}

/// A blocking `Write` into a streaming response.
struct ChunkWriter {
    tx: ChunkSender,
    handle: Handle,
    buf: Vec<u8>,
}

const CHUNK: usize = 256 * 1024;

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        self.handle
            .block_on(self.tx.send(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "client disconnected"))
    }
}

/// Read the rest of a request body the store gave up on, so the client
/// can finish sending and read the error instead of a broken pipe.
fn drain(reader: &mut BodyReader) {
    let _ = io::copy(reader, &mut io::sink());
}

/// What a blocking load/import reports back to its handler.
type Msg = Result<Value, berth_images::Error>;

async fn load(State(state): State<AppState>, q: QueryParams, body: Body) -> ApiResult<Response> {
    let quiet = q.bool("quiet");
    let mut reader = BodyReader::spawn(body);
    let (tx, rx) = mpsc::channel::<Msg>(64);
    let st = store(&state);
    tokio::task::spawn_blocking(move || {
        let mut progress = |p: LoadProgress| match p {
            LoadProgress::Message(m) => {
                let _ = tx.blocking_send(Ok(json!({"stream": m})));
            }
            LoadProgress::Layer { id, current, total } if !quiet => {
                let _ = tx.blocking_send(Ok(json!({
                    "status": "Loading layer",
                    "progressDetail": {"current": current, "total": total},
                    "progress": progress_bar(current, total),
                    "id": id,
                })));
            }
            LoadProgress::Layer { .. } => {}
        };
        if let Err(e) = st.load(&mut reader, &mut progress) {
            tracing::info!(error = %e, "image load failed");
            drain(&mut reader);
            let _ = tx.blocking_send(Err(e));
        }
    });
    Ok(json_progress_always(rx))
}

async fn save_many(State(state): State<AppState>, q: QueryParams) -> ApiResult<Response> {
    let names: Vec<String> = q
        .get_all("names")
        .into_iter()
        .flat_map(|n| n.split(',').map(str::to_owned).collect::<Vec<_>>())
        .filter(|n| !n.is_empty())
        .collect();
    save_response(store(&state), names).await
}

async fn save_response(st: Arc<ImageStore>, names: Vec<String>) -> ApiResult<Response> {
    if names.is_empty() {
        return Err(ApiError::bad_request("no images specified to save"));
    }
    // Resolve first, so an unknown name is a proper 404 before streaming.
    let check = st.clone();
    let checked = names.clone();
    blocking(move || {
        for n in &checked {
            check.resolve(n)?;
        }
        Ok(())
    })
    .await?;
    let (tx, resp) = streaming_response("application/x-tar");
    let handle = Handle::current();
    tokio::task::spawn_blocking(move || {
        let mut w = ChunkWriter {
            tx,
            handle,
            buf: Vec::with_capacity(CHUNK),
        };
        let res = st.save(&names, &mut w).and_then(|()| {
            w.flush().map_err(|e| berth_images::Error::Io {
                context: "send image archive".into(),
                source: e,
            })
        });
        if let Err(e) = res {
            // The status is already sent; a truncated tar is what the client sees.
            tracing::warn!(error = %e, "image save failed");
        }
    });
    Ok(resp)
}

async fn create(
    State(state): State<AppState>,
    q: QueryParams,
    headers: HeaderMap,
    ext: axum::http::Extensions,
    body: Body,
) -> ApiResult<Response> {
    if q.get("fromImage").is_some_and(|s| !s.is_empty()) {
        let client = super::client_watch::ClientWatch::of(&ext);
        return super::distribution::pull(state, &q, &headers, client).await;
    }
    let Some(src) = q.get("fromSrc").filter(|s| !s.is_empty()) else {
        return Err(ApiError::bad_request(
            "either fromImage or fromSrc is required",
        ));
    };
    // Anything but `-` names an archive to download; dockerd takes a
    // scheme-less source for an http URL.
    let body = if src == "-" {
        body
    } else {
        let url = if src.contains("://") {
            src.to_owned()
        } else {
            format!("http://{src}")
        };
        if !url.starts_with("http://") && !url.starts_with("https://") {
            return Err(ApiError::bad_request(format!(
                "unsupported import source {src}: only http(s) URLs and - are"
            )));
        }
        let resp = crate::fetch::get(&url).await.map_err(ApiError::internal)?;
        Body::from_stream(resp.bytes_stream())
    };
    let repo = q.get("repo").unwrap_or("");
    let reference = if repo.is_empty() {
        None
    } else {
        match repo_tag_reference(repo, q.get("tag").unwrap_or("")) {
            Ok(r) => Some(r),
            Err(e) => {
                // Let the client finish sending so it reads the error.
                let mut data = body.into_data_stream();
                while let Some(Ok(_)) = data.next().await {}
                return Err(e.into());
            }
        }
    };
    let opts = ImportOptions {
        source: src.to_owned(),
        reference,
        changes: q
            .get_all("changes")
            .into_iter()
            .map(str::to_owned)
            .collect(),
        message: q.get("message").unwrap_or("").to_owned(),
        platform: q.get("platform").unwrap_or("").to_owned(),
    };
    let mut reader = BodyReader::spawn(body);
    let (tx, rx) = mpsc::channel::<Msg>(4);
    let st = store(&state);
    tokio::task::spawn_blocking(move || {
        let msg = match st.import(&mut reader, &opts) {
            Ok(img) => Ok(json!({"status": img.id.to_string()})),
            Err(e) => {
                drain(&mut reader);
                Err(e)
            }
        };
        let _ = tx.blocking_send(msg);
    });
    json_progress(rx).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_distribution::human;

    #[test]
    fn splits_names_with_slashes() {
        assert_eq!(
            split_action("docker.io/library/busybox:latest/json", &["json"]),
            Some(("docker.io/library/busybox:latest", "json"))
        );
        assert_eq!(split_action("json", &["json"]), None);
        assert_eq!(split_action("a/b/other", &["json"]), None);
    }

    #[test]
    fn progress_bar_shape() {
        assert!(progress_bar(0, 100).starts_with("[>"));
        assert!(progress_bar(100, 100)
            .starts_with("[=================================================="));
        assert_eq!(human(1_500_000), "1.500MB");
    }
}
