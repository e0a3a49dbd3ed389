//! Relaying a hijacked client connection and a shim stdio connection (exec
//! and attach): client bytes go to the process's stdin, scanned for the
//! detach sequence; the shim's 8-byte framed output goes to the client
//! framed (no TTY) or raw (TTY), only for the streams the client asked for.
//! Every read is cancel-safe, so both directions run in one `select!` loop.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, WriteHalf};

use super::detach::{DetachScanner, Scan};
use berth_common::shim::{STREAM_STDERR, STREAM_STDOUT};

#[derive(Debug, Clone, Default)]
pub struct RelayOptions {
    /// The process has a terminal (its input outlives a client's EOF).
    pub tty: bool,
    /// Output without the multiplexing header (for exec, the start
    /// request's `Tty` decides, as dockerd); stderr is then dropped
    /// unless the process has a terminal.
    pub raw: bool,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    /// Detach on this sequence (only scanned when `stdin`).
    pub detach_keys: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayEnd {
    /// The shim closed the stream: the process exited, output is drained.
    OutputEnded,
    /// The client typed the detach keys.
    Detached,
    /// Writing to the client failed.
    ClientGone,
}

/// Splits the shim's framed output into (stream, payload) frames.
#[derive(Default)]
pub struct FrameParser {
    buf: Vec<u8>,
}

impl FrameParser {
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete frame, if any.
    pub fn next_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        if self.buf.len() < 8 {
            return None;
        }
        let len = u32::from_be_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]]) as usize;
        if self.buf.len() < 8 + len {
            return None;
        }
        let stream = self.buf[0];
        let payload = self.buf[8..8 + len].to_vec();
        self.buf.drain(..8 + len);
        Some((stream, payload))
    }
}

/// Run until one side ends. The client's write half is handed back
/// unclosed so the caller can finish (e.g. record the exit code) before
/// the client sees the end of the stream.
pub async fn relay<C, R, W>(
    client: C,
    mut shim_r: R,
    mut shim_w: W,
    opts: RelayOptions,
) -> (RelayEnd, WriteHalf<C>, R, W)
where
    C: AsyncRead + AsyncWrite + Unpin + Send,
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let (mut cr, mut cw) = tokio::io::split(client);
    let mut scanner = opts.detach_keys.clone().map(DetachScanner::new);
    let mut reading_client = opts.stdin;
    if !opts.stdin {
        let _ = shim_w.shutdown().await;
    }
    let mut cbuf = vec![0u8; 32 * 1024];
    let mut sbuf = vec![0u8; 64 * 1024];
    let mut parser = FrameParser::default();
    loop {
        tokio::select! {
            r = cr.read(&mut cbuf), if reading_client => match r {
                Ok(0) | Err(_) => {
                    // Half-close: output keeps flowing. Without a TTY the
                    // process gets EOF; a terminal's input stays open, as
                    // dockerd keeps it (a client that detached by closing
                    // must not end the shell).
                    reading_client = false;
                    if let Some(s) = &scanner {
                        let held = s.pending().to_vec();
                        if !held.is_empty() {
                            let _ = shim_w.write_all(&held).await;
                        }
                    }
                    if !opts.tty {
                        let _ = shim_w.shutdown().await;
                    }
                }
                Ok(n) => {
                    let (data, detach) = match scanner.as_mut().map(|s| s.feed(&cbuf[..n])) {
                        None => (cbuf[..n].to_vec(), false),
                        Some(Scan::Forward(d)) => (d, false),
                        Some(Scan::Detach(d)) => (d, true),
                    };
                    if !data.is_empty() && shim_w.write_all(&data).await.is_err() {
                        reading_client = false;
                    }
                    if detach {
                        let _ = cw.flush().await;
                        return (RelayEnd::Detached, cw, shim_r, shim_w);
                    }
                }
            },
            r = shim_r.read(&mut sbuf) => match r {
                Ok(0) | Err(_) => {
                    let _ = cw.flush().await;
                    return (RelayEnd::OutputEnded, cw, shim_r, shim_w);
                }
                Ok(n) => {
                    parser.push(&sbuf[..n]);
                    let mut out = Vec::new();
                    while let Some((stream, payload)) = parser.next_frame() {
                        let wanted = if opts.tty {
                            opts.stdout || opts.stderr
                        } else if opts.raw {
                            stream == STREAM_STDOUT && opts.stdout
                        } else {
                            (stream == STREAM_STDOUT && opts.stdout) || (stream == STREAM_STDERR && opts.stderr)
                        };
                        if !wanted || payload.is_empty() {
                            continue;
                        }
                        if !opts.raw {
                            out.extend_from_slice(&berth_common::shim::frame_header(stream, payload.len()));
                        }
                        out.extend_from_slice(&payload);
                    }
                    if !out.is_empty() && (cw.write_all(&out).await.is_err() || cw.flush().await.is_err()) {
                        return (RelayEnd::ClientGone, cw, shim_r, shim_w);
                    }
                }
            },
        }
    }
}

/// A whole attach session (`POST /containers/{id}/attach`) with detach
/// keys: relay until the output ends, the client goes away or types the
/// keys. After a detach the shim connection stays open (drained, stdin not
/// closed), so a `StdinOnce` container keeps its stdin for the next
/// `docker attach`. A client that closes (the docker CLI detaches by
/// closing; it keeps the keys to itself) ends stdin only without a TTY.
pub async fn attach_session<C, R, W>(
    client: C,
    shim_r: R,
    shim_w: W,
    tty: bool,
    stdin: bool,
    detach_keys: Option<Vec<u8>>,
) where
    C: AsyncRead + AsyncWrite + Unpin + Send,
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let opts = RelayOptions {
        tty,
        raw: tty,
        stdin,
        // The shim already sends only the streams the attach asked for.
        stdout: true,
        stderr: true,
        detach_keys: if tty && stdin { detach_keys } else { None },
    };
    let (end, mut client_w, shim_r, shim_w) = relay(client, shim_r, shim_w, opts).await;
    let _ = client_w.shutdown().await;
    drop(client_w);
    // With a terminal, the container's input outlives any client (the CLI
    // detaches by closing); without one, only a detach keeps it.
    if end == RelayEnd::Detached || (tty && end == RelayEnd::ClientGone) {
        let _keep_stdin_open = shim_w;
        drain(shim_r).await;
    }
}

/// After a detach or a vanished client: keep reading (and dropping) the
/// process's output so it never blocks on a full pipe, until it exits.
pub async fn drain<R: AsyncRead + Unpin>(mut shim_r: R) {
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n) = shim_r.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_common::shim::frame_header;
    use tokio::io::{DuplexStream, ReadHalf, WriteHalf};

    fn framed(stream: u8, data: &[u8]) -> Vec<u8> {
        let mut v = frame_header(stream, data.len()).to_vec();
        v.extend_from_slice(data);
        v
    }

    /// The client connection and the shim connection (split, as the relay
    /// takes it), each with the peer the test drives.
    struct Pipes {
        client: DuplexStream,
        client_peer: DuplexStream,
        shim_r: ReadHalf<DuplexStream>,
        shim_w: WriteHalf<DuplexStream>,
        shim_peer: DuplexStream,
    }

    fn pipes() -> Pipes {
        let (client, client_peer) = tokio::io::duplex(1 << 16);
        let (shim_side, shim_peer) = tokio::io::duplex(1 << 16);
        let (shim_r, shim_w) = tokio::io::split(shim_side);
        Pipes {
            client,
            client_peer,
            shim_r,
            shim_w,
            shim_peer,
        }
    }

    fn tty_opts(detach_keys: Option<Vec<u8>>) -> RelayOptions {
        RelayOptions {
            tty: true,
            raw: true,
            stdin: true,
            stdout: true,
            stderr: true,
            detach_keys,
        }
    }

    /// Nothing to read and no EOF within 100 ms: the other side is neither
    /// closed nor half-closed.
    async fn still_open(peer: &mut DuplexStream) -> bool {
        let mut probe = [0u8; 1];
        tokio::time::timeout(std::time::Duration::from_millis(100), peer.read(&mut probe))
            .await
            .is_err()
    }

    #[test]
    fn parser_handles_split_frames() {
        let mut p = FrameParser::default();
        let all = [framed(1, b"hello"), framed(2, b"err")].concat();
        p.push(&all[..6]);
        assert!(p.next_frame().is_none());
        p.push(&all[6..]);
        assert_eq!(p.next_frame(), Some((1, b"hello".to_vec())));
        assert_eq!(p.next_frame(), Some((2, b"err".to_vec())));
        assert!(p.next_frame().is_none());
    }

    #[tokio::test]
    async fn relays_filters_and_half_closes() {
        let mut p = pipes();
        let opts = RelayOptions {
            tty: false,
            raw: false,
            stdin: true,
            stdout: true,
            stderr: false,
            detach_keys: None,
        };
        let task = tokio::spawn(relay(p.client, p.shim_r, p.shim_w, opts));
        p.client_peer.write_all(b"input").await.unwrap();
        p.client_peer.shutdown().await.unwrap();
        let mut got = Vec::new();
        p.shim_peer
            .write_all(&[framed(1, b"out"), framed(2, b"hidden")].concat())
            .await
            .unwrap();
        let mut stdin = vec![0u8; 5];
        p.shim_peer.read_exact(&mut stdin).await.unwrap();
        assert_eq!(&stdin, b"input");
        // The client's half-close reached the shim side.
        let mut rest = Vec::new();
        p.shim_peer.read_to_end(&mut rest).await.unwrap_or(0);
        drop(p.shim_peer);
        let (end, mut cw, _, _) = task.await.unwrap();
        assert_eq!(end, RelayEnd::OutputEnded);
        cw.shutdown().await.unwrap();
        p.client_peer.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, framed(1, b"out"));
    }

    #[tokio::test]
    async fn attach_session_keeps_stdin_open_after_detach() {
        let mut p = pipes();
        let task = tokio::spawn(attach_session(
            p.client,
            p.shim_r,
            p.shim_w,
            true,
            true,
            Some(vec![16, 17]),
        ));
        p.client_peer.write_all(b"hi\x10\x11").await.unwrap();
        // The client sees the end of its stream...
        let mut rest = Vec::new();
        p.client_peer.read_to_end(&mut rest).await.unwrap();
        let mut stdin = vec![0u8; 2];
        p.shim_peer.read_exact(&mut stdin).await.unwrap();
        assert_eq!(&stdin, b"hi");
        // ...while the shim side is neither closed nor half-closed.
        assert!(
            still_open(&mut p.shim_peer).await,
            "stdin was closed after a detach"
        );
        drop(p.shim_peer);
        task.await.unwrap();
    }

    #[tokio::test]
    async fn a_terminal_keeps_its_input_when_the_client_closes() {
        let mut p = pipes();
        let opts = tty_opts(None);
        let task = tokio::spawn(relay(p.client, p.shim_r, p.shim_w, opts));
        drop(p.client_peer);
        assert!(
            still_open(&mut p.shim_peer).await,
            "the terminal's input was closed"
        );
        drop(p.shim_peer);
        let (end, _, _, _) = task.await.unwrap();
        assert_eq!(end, RelayEnd::OutputEnded);
    }

    #[tokio::test]
    async fn detach_keys_end_the_relay() {
        let mut p = pipes();
        let opts = tty_opts(Some(vec![16, 17]));
        let task = tokio::spawn(relay(p.client, p.shim_r, p.shim_w, opts));
        p.client_peer.write_all(b"ls\x10\x11").await.unwrap();
        let (end, _, _, _) = task.await.unwrap();
        assert_eq!(end, RelayEnd::Detached);
        let mut stdin = vec![0u8; 2];
        p.shim_peer.read_exact(&mut stdin).await.unwrap();
        assert_eq!(&stdin, b"ls");
    }
}
