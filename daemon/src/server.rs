//! Listeners (unix sockets, TCP, systemd-style fd://) and the HTTP/1.1
//! connection loop with upgrade support (attach/exec hijack connections).

use anyhow::{anyhow, bail, Context, Result};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::api;
use crate::api::client_watch::ConnFd;
use crate::config::{Config, Host, DEFAULT_GROUP};
use crate::tls::TlsAcceptor;

/// How long in-flight requests may finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

pub enum Listener {
    Unix {
        listener: UnixListener,
        /// Removed at shutdown (None for inherited sockets).
        path: Option<PathBuf>,
    },
    Tcp {
        listener: TcpListener,
        /// None: plain HTTP (loopback, or `--tls=false`).
        tls: Option<TlsAcceptor>,
    },
}

impl Listener {
    pub fn describe(&self) -> String {
        match self {
            Listener::Unix { path: Some(p), .. } => format!("unix://{}", p.display()),
            Listener::Unix { path: None, .. } => "unix (inherited fd)".into(),
            Listener::Tcp { listener, tls } => {
                let addr = match listener.local_addr() {
                    Ok(a) => format!("tcp://{a}"),
                    Err(_) => "tcp".into(),
                };
                match tls {
                    Some(_) => format!("{addr} (TLS)"),
                    None => addr,
                }
            }
        }
    }
}

/// Removes the socket files of `listeners` (start-up failed after binding).
pub fn remove_socket_files(listeners: &[Listener]) {
    for l in listeners {
        if let Listener::Unix { path: Some(p), .. } = l {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Opens every configured host. Unix sockets get mode 0660 and the
/// configured group.
/// TCP listeners get TLS when configured; plain TCP on a non-loopback
/// address is refused unless TLS was turned off explicitly.
pub fn bind_all(config: &Config) -> Result<Vec<Listener>> {
    let gid = socket_gid(config.group.as_deref())?;
    let acceptor = match &config.tls {
        Some(settings) if config.hosts.iter().any(|h| !matches!(h, Host::Unix(_))) => {
            Some(crate::tls::acceptor(settings).context("setting up TLS")?)
        }
        _ => None,
    };
    let mut out = Vec::new();
    let bound = |l: Listener, out: &mut Vec<Listener>| -> Result<()> {
        let l = match l {
            Listener::Tcp { listener, .. } => {
                check_plain_tcp(&listener, acceptor.is_some(), config)?;
                Listener::Tcp {
                    listener,
                    tls: acceptor.clone(),
                }
            }
            unix => unix,
        };
        out.push(l);
        Ok(())
    };
    for host in &config.hosts {
        let result = match host {
            Host::Unix(path) => bind_unix(path, gid).and_then(|l| bound(l, &mut out)),
            Host::Tcp(addr) => bind_tcp(addr).and_then(|l| bound(l, &mut out)),
            Host::Fd(which) => {
                inherited(*which).and_then(|ls| ls.into_iter().try_for_each(|l| bound(l, &mut out)))
            }
        };
        if let Err(e) = result {
            remove_socket_files(&out);
            return Err(e);
        }
    }
    Ok(out)
}

fn bind_tcp(addr: &str) -> Result<Listener> {
    let std_listener =
        std::net::TcpListener::bind(addr).with_context(|| format!("listening on tcp://{addr}"))?;
    std_listener.set_nonblocking(true)?;
    Ok(Listener::Tcp {
        listener: TcpListener::from_std(std_listener)?,
        tls: None,
    })
}

/// Anyone who reaches the API is root on this host: without TLS only
/// loopback is served, unless `--tls=false` says the risk is accepted.
fn check_plain_tcp(listener: &TcpListener, tls: bool, config: &Config) -> Result<()> {
    if tls {
        return Ok(());
    }
    let addr = listener.local_addr().context("address of a TCP listener")?;
    if addr.ip().is_loopback() {
        return Ok(());
    }
    if config.tls_disabled_explicitly {
        tracing::warn!(
            %addr,
            "API listening on tcp://{addr} without TLS (--tls=false): anyone who can reach it is root on this host"
        );
        return Ok(());
    }
    bail!(
        "refusing to serve the API on tcp://{addr} without TLS: anyone who can reach it would be root on this host; \
         use --tlsverify with --tlscacert, --tlscert and --tlskey, or pass --tls=false to accept the risk"
    )
}

fn socket_gid(group: Option<&str>) -> Result<u32> {
    let explicit = group.is_some();
    let name = group.unwrap_or(DEFAULT_GROUP);
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    match nix::unistd::Group::from_name(name) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        Ok(None) if !explicit => Ok(0),
        Ok(None) => bail!("group {name:?} not found for the API socket"),
        Err(e) => Err(e).with_context(|| format!("looking up group {name:?}")),
    }
}

fn bind_unix(path: &Path, gid: u32) -> Result<Listener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => tracing::info!(socket = %path.display(), "removed stale socket"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
    }
    let listener = UnixListener::bind(path)
        .with_context(|| format!("listening on unix://{}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("chmod {}", path.display()))?;
    std::os::unix::fs::chown(path, Some(0), Some(gid))
        .with_context(|| format!("chown {} to group {gid}", path.display()))?;
    Ok(Listener::Unix {
        listener,
        path: Some(path.to_path_buf()),
    })
}

/// Sockets passed by a service manager (LISTEN_PID, LISTEN_FDS, from fd 3).
fn inherited(which: Option<i32>) -> Result<Vec<Listener>> {
    const FIRST: RawFd = 3;
    let pid: u32 = std::env::var("LISTEN_PID")
        .map_err(|_| anyhow!("fd:// requested but LISTEN_PID is not set (not socket-activated)"))?
        .parse()
        .context("parsing LISTEN_PID")?;
    if pid != std::process::id() {
        bail!("fd://: LISTEN_PID {pid} is not this process");
    }
    let count: i32 = std::env::var("LISTEN_FDS")
        .map_err(|_| anyhow!("fd:// requested but LISTEN_FDS is not set"))?
        .parse()
        .context("parsing LISTEN_FDS")?;
    let fds: Vec<RawFd> = match which {
        None => (FIRST..FIRST + count).collect(),
        Some(fd) if fd >= FIRST && fd < FIRST + count => vec![fd],
        Some(fd) => bail!("fd://{fd} was not passed (LISTEN_FDS={count})"),
    };
    if fds.is_empty() {
        bail!("fd://: no sockets were passed (LISTEN_FDS={count})");
    }
    fds.into_iter().map(adopt_fd).collect()
}

fn adopt_fd(fd: RawFd) -> Result<Listener> {
    use nix::sys::socket::{getsockname, AddressFamily, SockaddrLike, SockaddrStorage};
    let addr: SockaddrStorage =
        getsockname(fd).with_context(|| format!("fd {fd} is not a socket"))?;
    nix::fcntl::fcntl(
        fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .with_context(|| format!("fd {fd}: setting close-on-exec"))?;
    // SAFETY: the service manager handed this fd to us for exclusive use;
    // it is only wrapped once.
    match addr.family() {
        Some(AddressFamily::Unix) => {
            let l = unsafe { std::os::unix::net::UnixListener::from_raw_fd(fd) };
            l.set_nonblocking(true)?;
            Ok(Listener::Unix {
                listener: UnixListener::from_std(l)?,
                path: None,
            })
        }
        Some(AddressFamily::Inet) | Some(AddressFamily::Inet6) => {
            let l = unsafe { std::net::TcpListener::from_raw_fd(fd) };
            l.set_nonblocking(true)?;
            Ok(Listener::Tcp {
                listener: TcpListener::from_std(l)?,
                tls: None,
            })
        }
        other => bail!("fd {fd}: unsupported socket family {other:?}"),
    }
}

/// What the connections are served with (the API router): one request
/// service, cloned per connection.
pub trait ApiService:
    tower::Service<
        hyper::Request<hyper::body::Incoming>,
        Response = axum::response::Response,
        Error = std::convert::Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + 'static
{
}

impl<S> ApiService for S where
    S: tower::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + 'static
{
}

/// Serves `service` on every listener until `shutdown` fires, then stops
/// accepting, removes unix socket files and gives open requests a short
/// grace period. Hijacked (attach/exec) connections are not waited for.
pub async fn serve<S: ApiService>(
    what: &'static str,
    listeners: Vec<Listener>,
    service: S,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut accept_loops = JoinSet::new();
    let mut socket_paths = Vec::new();
    for listener in listeners {
        tracing::info!(listener = %listener.describe(), "{what} listening");
        if let Listener::Unix { path: Some(p), .. } = &listener {
            socket_paths.push(p.clone());
        }
        accept_loops.spawn(accept_loop(listener, service.clone(), shutdown.clone()));
    }
    stopped(&mut shutdown).await;
    for path in &socket_paths {
        if let Err(e) = std::fs::remove_file(path) {
            tracing::warn!(socket = %path.display(), error = %e, "removing socket");
        }
    }
    let _ = tokio::time::timeout(SHUTDOWN_GRACE + Duration::from_millis(500), async {
        while accept_loops.join_next().await.is_some() {}
    })
    .await;
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A connection as accepted, before any TLS handshake (which runs in the
/// connection's own task so that a slow client never blocks accept).
enum Accepted {
    Unix(tokio::net::UnixStream),
    Tcp(tokio::net::TcpStream, Option<TlsAcceptor>),
}

impl Accepted {
    /// The connection's socket, for [`crate::api::client_watch`].
    fn raw_fd(&self) -> RawFd {
        match self {
            Accepted::Unix(s) => s.as_raw_fd(),
            Accepted::Tcp(s, _) => s.as_raw_fd(),
        }
    }

    async fn into_io(self) -> Option<Box<dyn Io>> {
        match self {
            Accepted::Unix(s) => Some(Box::new(s)),
            Accepted::Tcp(s, None) => Some(Box::new(s)),
            Accepted::Tcp(s, Some(acceptor)) => {
                let peer = s.peer_addr().ok();
                match crate::tls::handshake(&acceptor, s).await {
                    Ok(tls) => Some(Box::new(tls)),
                    Err(e) => {
                        tracing::info!(peer = ?peer, error = %format!("{e:#}"), "TLS handshake refused");
                        None
                    }
                }
            }
        }
    }
}

impl Listener {
    async fn accept(&self) -> std::io::Result<Accepted> {
        match self {
            Listener::Unix { listener, .. } => {
                let (s, _) = listener.accept().await?;
                Ok(Accepted::Unix(s))
            }
            Listener::Tcp { listener, tls } => {
                let (s, _) = listener.accept().await?;
                let _ = s.set_nodelay(true);
                Ok(Accepted::Tcp(s, tls.clone()))
            }
        }
    }
}

async fn accept_loop<S: ApiService>(
    listener: Listener,
    service: S,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped(&mut shutdown) => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => {
                    let (service, shutdown) = (service.clone(), shutdown.clone());
                    connections.spawn(async move {
                        let service = WithConnFd { inner: service, fd: ConnFd(accepted.raw_fd()) };
                        if let Some(io) = accepted.into_io().await {
                            serve_connection(io, service, shutdown).await;
                        }
                    });
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
}

/// Tags each request with the socket it came on.
#[derive(Clone)]
struct WithConnFd<S> {
    inner: S,
    fd: ConnFd,
}

impl<S, B> tower::Service<hyper::Request<B>> for WithConnFd<S>
where
    S: tower::Service<hyper::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: hyper::Request<B>) -> Self::Future {
        req.extensions_mut().insert(self.fd);
        self.inner.call(req)
    }
}

/// hyper's side of the API service. hyper drops a request's future,
/// unpolled even, when the client's end of file follows the request at
/// once; the requests [`api::must_finish`] names are handed to a task of
/// their own right here, as hyper dispatches them, and run to their end.
struct ToHyper<S>(S);

type Answer = Result<axum::response::Response, std::convert::Infallible>;
type Joined = fn(Result<Answer, tokio::task::JoinError>) -> Answer;

impl<S: ApiService> hyper::service::Service<hyper::Request<hyper::body::Incoming>> for ToHyper<S> {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = futures_util::future::Either<
        tower::util::Oneshot<S, hyper::Request<hyper::body::Incoming>>,
        futures_util::future::Map<tokio::task::JoinHandle<Answer>, Joined>,
    >;

    fn call(&self, req: hyper::Request<hyper::body::Incoming>) -> Self::Future {
        use futures_util::future::Either;
        use futures_util::FutureExt;
        use tower::ServiceExt;
        let detach = api::must_finish(req.method(), req.uri().path());
        let answer = self.0.clone().oneshot(req);
        if !detach {
            return Either::Left(answer);
        }
        let joined: Joined = |r| {
            r.unwrap_or_else(|e| {
                Ok(axum::response::IntoResponse::into_response(
                    api::error::ApiError::internal(format!("request task: {e}")),
                ))
            })
        };
        Either::Right(tokio::spawn(answer).map(joined))
    }
}

async fn serve_connection<IO, S>(io: IO, service: S, mut shutdown: watch::Receiver<bool>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: ApiService,
{
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(io), ToHyper(service))
        .with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = stopped(&mut shutdown) => {
            conn.as_mut().graceful_shutdown();
            match tokio::time::timeout(SHUTDOWN_GRACE, conn.as_mut()).await {
                Ok(r) => r,
                Err(_) => Ok(()),
            }
        }
    };
    if let Err(e) = result {
        if !e.is_incomplete_message() {
            tracing::debug!(error = %e, "connection error");
        }
    }
}

/// Resolves once the shutdown flag is set (or its sender is gone).
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::stream::{Hijack, RAW_STREAM};
    use axum::body::Body;
    use axum::routing::post;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::UnixStream;

    /// A hijacked connection gets 101 with docker's headers, sees the
    /// client's half-close as EOF and can still write afterwards; shutdown
    /// removes the socket file.
    #[tokio::test]
    async fn upgrade_half_close_and_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("api.sock");
        let listener = bind_unix(&sock, 0).unwrap();
        let app = axum::Router::new().route(
            "/echo",
            post(|hijack: Hijack| async move {
                assert!(hijack.is_upgrade());
                hijack.respond(RAW_STREAM, |mut io| async move {
                    let mut got = Vec::new();
                    io.read_to_end(&mut got).await.unwrap();
                    io.write_all(&got).await.unwrap();
                    io.write_all(b"|after-eof").await.unwrap();
                    io.shutdown().await.unwrap();
                })
            }),
        );
        let svc =
            tower::ServiceExt::map_request(app, |r: hyper::Request<hyper::body::Incoming>| {
                r.map(Body::new)
            });
        let (stop_tx, stop_rx) = watch::channel(false);
        let server = tokio::spawn(serve("API", vec![listener], svc, stop_rx));

        let mut c = UnixStream::connect(&sock).await.unwrap();
        c.write_all(
            b"POST /echo HTTP/1.1\r\nHost: berth\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n",
        )
        .await
        .unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut b = [0u8; 1];
            assert_eq!(
                c.read(&mut b).await.unwrap(),
                1,
                "connection closed in headers"
            );
            head.push(b[0]);
        }
        let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 101"), "{head}");
        assert!(
            head.contains("content-type: application/vnd.docker.raw-stream"),
            "{head}"
        );
        assert!(head.contains("connection: upgrade"), "{head}");
        assert!(head.contains("upgrade: tcp"), "{head}");

        c.write_all(b"stdin data").await.unwrap();
        c.shutdown().await.unwrap();
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), c.read_to_end(&mut rest))
            .await
            .expect("no EOF from the server")
            .unwrap();
        assert_eq!(rest, b"stdin data|after-eof");

        stop_tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("serve did not return after shutdown")
            .unwrap();
        assert!(!sock.exists(), "socket left after shutdown");
    }

    #[test]
    fn unix_socket_mode_is_0660() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("x/api.sock");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let _l = bind_unix(&sock, 0).unwrap();
            let meta = std::fs::metadata(&sock).unwrap();
            assert_eq!(meta.permissions().mode() & 0o777, 0o660);
        });
    }

    #[test]
    fn socket_group() {
        assert_eq!(socket_gid(Some("0")).unwrap(), 0);
        assert_eq!(socket_gid(Some("root")).unwrap(), 0);
        assert!(socket_gid(Some("no-such-group-berth")).is_err());
        // The default group falls back to root when it does not exist.
        assert!(socket_gid(None).is_ok());
    }
}
