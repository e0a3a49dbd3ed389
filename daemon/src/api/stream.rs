//! Streaming responses: connection hijacking for attach/exec, bodies that
//! flush every chunk (events, logs follow, stats), and the 8-byte
//! multiplexed frame format.

use axum::body::{Body, Bytes};
use axum::extract::FromRequestParts;
use axum::http::header::{CONNECTION, CONTENT_TYPE, UPGRADE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::future::Future;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

use super::version::ApiVersion;

#[allow(unused_imports)]
pub use berth_common::shim::{STREAM_STDERR, STREAM_STDIN, STREAM_STDOUT};

/// Content types of hijacked streams.
pub const RAW_STREAM: &str = "application/vnd.docker.raw-stream";
pub const MULTIPLEXED_STREAM: &str = "application/vnd.docker.multiplexed-stream";

/// The `Content-Type` of a log or attach stream at `version`: before API
/// 1.42 dockerd labels every stream raw, even a multiplexed one.
pub fn stream_content_type(tty: bool, version: ApiVersion) -> &'static str {
    if !tty && version.at_least(1, 42) {
        MULTIPLEXED_STREAM
    } else {
        RAW_STREAM
    }
}

/// A bidirectional byte stream to the client.
pub trait ClientIo: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> ClientIo for T {}

/// The connection of a hijacked request: reads give what the client sends
/// (EOF once it half-closes), writes go straight to it.
pub type HijackedIo = Box<dyn ClientIo>;

/// Extractor for endpoints that take over the connection (attach, exec
/// start). Call [`Hijack::respond`] to answer and get the raw stream.
pub struct Hijack {
    on_upgrade: Option<OnUpgrade>,
    /// The client reads the response head through a buffer (see
    /// [`HeadGap`]).
    buffered_head: bool,
}

impl<S: Send + Sync> FromRequestParts<S> for Hijack {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let wants_upgrade =
            header_has_token(parts, CONNECTION, "upgrade") && parts.headers.contains_key(UPGRADE);
        let on_upgrade = if wants_upgrade {
            parts.extensions.remove::<OnUpgrade>()
        } else {
            None
        };
        let buffered_head = parts
            .headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ua| ua.contains("docker-sdk-python") || ua.contains("docker-py/"));
        Ok(Hijack {
            on_upgrade,
            buffered_head,
        })
    }
}

fn header_has_token(parts: &Parts, name: axum::http::HeaderName, token: &str) -> bool {
    parts.headers.get_all(name).iter().any(|v| {
        v.to_str()
            .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

impl Hijack {
    /// True when the client asked for `Upgrade: tcp` (docker CLI, docker-py
    /// sockets); otherwise the stream is served as a plain response body
    /// and reads see EOF at once.
    pub fn is_upgrade(&self) -> bool {
        self.on_upgrade.is_some()
    }

    /// The `Content-Type` dockerd gives a hijacked attach or exec stream:
    /// multiplexed only for an upgraded connection without a TTY at API
    /// 1.42 and later; raw-stream otherwise, whatever the framing.
    pub fn content_type(&self, tty: bool, version: ApiVersion) -> &'static str {
        if self.is_upgrade() {
            stream_content_type(tty, version)
        } else {
            RAW_STREAM
        }
    }

    /// Answer the request and run `task` on the client stream.
    ///
    /// With an upgrade request: `101 UPGRADED` with `Content-Type`,
    /// `Connection: Upgrade`, `Upgrade: tcp`, then `task` gets the raw
    /// connection. Without: `200` with the content type and a body that
    /// carries whatever `task` writes, flushed as written.
    pub fn respond<F, Fut>(self, content_type: &'static str, task: F) -> Response
    where
        F: FnOnce(HijackedIo) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        match self.on_upgrade {
            Some(on_upgrade) => {
                let buffered_head = self.buffered_head;
                tokio::spawn(async move {
                    match on_upgrade.await {
                        Ok(upgraded) if buffered_head => {
                            task(Box::new(HeadGap::new(TokioIo::new(upgraded)))).await
                        }
                        Ok(upgraded) => task(Box::new(TokioIo::new(upgraded))).await,
                        Err(e) => tracing::warn!(error = %e, "connection upgrade failed"),
                    }
                });
                let mut resp = Response::new(Body::empty());
                *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
                let h = resp.headers_mut();
                h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
                h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
                h.insert(UPGRADE, HeaderValue::from_static("tcp"));
                resp
            }
            None => {
                let (ours, theirs) = tokio::io::duplex(64 * 1024);
                let (theirs_read, mut theirs_write) = tokio::io::split(theirs);
                tokio::spawn(async move {
                    // Closing this side gives the task EOF on reads, like a
                    // client that sends no stdin.
                    let _ = tokio::io::AsyncWriteExt::shutdown(&mut theirs_write).await;
                    task(Box::new(ours)).await
                });
                let body = Body::from_stream(tokio_util::io::ReaderStream::new(theirs_read));
                let mut resp = Response::new(body);
                resp.headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
                resp
            }
        }
    }
}

/// docker-py (and so compose 1.29 and testcontainers) reads the `101`
/// head through Python's buffered reader, then reads the raw socket: bytes
/// that arrived together with the head stay in that buffer and are lost.
/// dockerd never shows it because its first payload comes a while after
/// the head. For those clients the first write waits until [`HEAD_GAP`]
/// after the upgrade, which costs nothing when the payload comes later
/// anyway (live output) and keeps replayed logs and fast exec output.
struct HeadGap<T> {
    inner: T,
    gap: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

const HEAD_GAP: std::time::Duration = std::time::Duration::from_millis(20);

impl<T> HeadGap<T> {
    fn new(inner: T) -> Self {
        HeadGap {
            inner,
            gap: Some(Box::pin(tokio::time::sleep(HEAD_GAP))),
        }
    }

    fn poll_gap(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        if let Some(gap) = &mut self.gap {
            std::task::ready!(gap.as_mut().poll(cx));
            self.gap = None;
        }
        std::task::Poll::Ready(())
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for HeadGap<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for HeadGap<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::task::ready!(self.poll_gap(cx));
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Sending half of a streaming response body. Each chunk is flushed to the
/// client as soon as it is sent.
#[derive(Clone)]
pub struct ChunkSender {
    tx: mpsc::Sender<Bytes>,
}

/// The client went away; stop producing.
#[derive(Debug, thiserror::Error)]
#[error("client disconnected")]
pub struct Disconnected;

impl ChunkSender {
    pub async fn send(&self, chunk: impl Into<Bytes>) -> Result<(), Disconnected> {
        self.tx.send(chunk.into()).await.map_err(|_| Disconnected)
    }

    /// One JSON value followed by a newline (events, progress, stats).
    pub async fn send_json<T: serde::Serialize>(&self, value: &T) -> Result<(), Disconnected> {
        let mut line = match serde_json::to_vec(value) {
            Ok(line) => line,
            Err(e) => {
                tracing::error!(error = %e, "serializing a stream message");
                return Ok(());
            }
        };
        line.push(b'\n');
        self.send(line).await
    }

    /// Resolves when the client has gone away.
    pub async fn closed(&self) {
        self.tx.closed().await
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// A `200` response with `content_type` whose body is whatever is sent on
/// the returned [`ChunkSender`]; the body ends when every sender is dropped.
/// Headers go out at once, before the first chunk.
pub fn streaming_response(content_type: &'static str) -> (ChunkSender, Response) {
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, Infallible>(chunk), rx))
    });
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    (ChunkSender { tx }, resp)
}

/// One frame of a multiplexed stream: stream byte (0 stdin, 1 stdout,
/// 2 stderr), three zero bytes, big-endian u32 length, then the payload.
pub fn frame(stream: u8, data: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(8 + data.len());
    out.extend_from_slice(&berth_common::shim::frame_header(stream, data.len()));
    out.extend_from_slice(data);
    Bytes::from(out)
}

/// Answers with what a long operation (load, import, pull, push) reports:
/// an error before its first message is a plain HTTP error, as dockerd
/// answers when nothing was flushed yet; after that, a JSON stream where an
/// error becomes an `errorDetail` message. Dropping the receiver (client
/// gone) tells the operation to stop.
pub async fn json_progress<E>(
    mut rx: mpsc::Receiver<Result<serde_json::Value, E>>,
) -> super::ApiResult<Response>
where
    E: std::fmt::Display + Send + 'static,
    super::error::ApiError: From<E>,
{
    let first = match rx.recv().await {
        Some(Err(e)) => return Err(e.into()),
        Some(Ok(v)) => Some(v),
        None => None,
    };
    Ok(progress_stream(first, rx))
}

/// Like [`json_progress`], but every error, the first included, goes into
/// the 200 stream (as dockerd answers `docker load`).
pub fn json_progress_always<E>(rx: mpsc::Receiver<Result<serde_json::Value, E>>) -> Response
where
    E: std::fmt::Display + Send + 'static,
{
    progress_stream(None, rx)
}

fn progress_stream<E>(
    first: Option<serde_json::Value>,
    mut rx: mpsc::Receiver<Result<serde_json::Value, E>>,
) -> Response
where
    E: std::fmt::Display + Send + 'static,
{
    let (tx, resp) = streaming_response("application/json");
    tokio::spawn(async move {
        if let Some(v) = first {
            if tx.send_json(&v).await.is_err() {
                return;
            }
        }
        while let Some(m) = rx.recv().await {
            let v = m.unwrap_or_else(|e| {
                let msg = e.to_string();
                serde_json::json!({"errorDetail": {"message": msg}, "error": msg})
            });
            if tx.send_json(&v).await.is_err() {
                return;
            }
        }
    });
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn frame_layout() {
        let f = frame(STREAM_STDERR, b"hi");
        assert_eq!(&f[..], &[2, 0, 0, 0, 0, 0, 0, 2, b'h', b'i']);
    }

    #[tokio::test]
    async fn streaming_body_carries_chunks_in_order() {
        let (tx, resp) = streaming_response("application/json");
        assert_eq!(resp.headers()[CONTENT_TYPE], "application/json");
        tokio::spawn(async move {
            tx.send_json(&serde_json::json!({"a": 1})).await.unwrap();
            tx.send("x").await.unwrap();
        });
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"{\"a\":1}\nx");
    }

    #[tokio::test]
    async fn hijack_without_upgrade_streams_body() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let hijack = Hijack {
            on_upgrade: None,
            buffered_head: false,
        };
        assert!(!hijack.is_upgrade());
        let resp = hijack.respond(RAW_STREAM, |mut io| async move {
            let mut buf = Vec::new();
            // No stdin without an upgrade: EOF straight away.
            io.read_to_end(&mut buf).await.unwrap();
            assert!(buf.is_empty());
            io.write_all(b"out").await.unwrap();
            io.shutdown().await.unwrap();
        });
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()[CONTENT_TYPE], RAW_STREAM);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"out");
    }
}
