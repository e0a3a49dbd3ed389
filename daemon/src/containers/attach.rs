//! `POST /containers/{id}/attach`: relays between the hijacked client
//! connection and the shim's attach operation. Clients that attach before
//! the container starts (`docker run`) are parked and connected by `start`,
//! before the process can write anything.

use std::sync::Arc;

use berth_common::shim::Request;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::core::{Containers, PendingAttach};
use super::record::{ContainerRecord, Status};
use super::shim::Connection;
use crate::api::stream::HijackedIo;

#[derive(Debug, Clone, Copy, Default)]
pub struct AttachRequest {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub stream: bool,
    pub logs: bool,
}

/// Where an attach goes, decided before the request is answered.
pub enum AttachTicket {
    /// Parked until `start`: hand the connection over here.
    Parked(tokio::sync::oneshot::Sender<HijackedIo>),
    /// The container runs: connect to its shim directly.
    Live,
    /// Removed or being removed: nothing will come.
    Closed,
}

impl Containers {
    /// Decide (under the container's operation lock, so a concurrent
    /// `start` either sees the parked client or has already started)
    /// where an attach goes. Call before answering the request.
    pub async fn attach_ticket(
        &self,
        reference: &str,
        req: &AttachRequest,
    ) -> super::error::Result<AttachTicket> {
        let c = self.get(reference)?;
        if !req.stream {
            return Ok(AttachTicket::Closed);
        }
        let _op = c.op.lock().await;
        Ok(match c.status() {
            // `docker start -a` parks too: the container starts next.
            Status::Created | Status::Exited => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                c.pending_attach
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(PendingAttach {
                        request: *req,
                        io: rx,
                    });
                AttachTicket::Parked(tx)
            }
            Status::Running | Status::Paused | Status::Restarting => AttachTicket::Live,
            Status::Removing | Status::Dead => AttachTicket::Closed,
        })
    }

    /// Serve an attach on `io` (already answered with 101/200).
    pub async fn attach(
        self: &Arc<Self>,
        reference: &str,
        req: AttachRequest,
        ticket: AttachTicket,
        mut io: HijackedIo,
    ) {
        let Ok(c) = self.get(reference) else {
            let _ = io.shutdown().await;
            return;
        };
        let rec = c.snapshot();
        if req.logs {
            self.replay_logs(&rec, &req, &mut io).await;
        }
        if req.stream {
            self.publish(&rec, "attach");
        }
        match ticket {
            AttachTicket::Parked(slot) => {
                if let Err(mut io) = slot.send(io) {
                    let _ = io.shutdown().await;
                }
            }
            AttachTicket::Live => self.connect_attach(&rec, req, io).await,
            AttachTicket::Closed => {
                let _ = io.shutdown().await;
            }
        }
    }

    /// Open the shim's attach and relay in the background.
    pub(super) async fn connect_attach(
        &self,
        rec: &ContainerRecord,
        req: AttachRequest,
        mut io: HijackedIo,
    ) {
        let shim = self.shim(&rec.id);
        let opened = shim
            .open(&Request::Attach {
                stdin: req.stdin,
                stdout: req.stdout,
                stderr: req.stderr,
            })
            .await;
        let conn = match opened {
            Ok((resp, conn)) if resp.ok => conn,
            Ok((resp, _)) => {
                tracing::warn!(id = %rec.id, error = ?resp.error, "shim refused attach");
                let _ = io.shutdown().await;
                return;
            }
            Err(e) => {
                tracing::warn!(id = %rec.id, error = %e, "attaching to the shim");
                let _ = io.shutdown().await;
                return;
            }
        };
        let tty = rec.config.tty;
        tokio::spawn(relay(io, conn, tty, req.stdin));
    }

    /// `logs=1`: what the json-file log holds so far, framed like the
    /// live stream.
    async fn replay_logs(&self, rec: &ContainerRecord, req: &AttachRequest, io: &mut HijackedIo) {
        let path = self.settings.log_path(&rec.id);
        let (stdout, stderr, tty) = (req.stdout, req.stderr, rec.config.tty);
        let data = tokio::task::spawn_blocking(move || {
            let text = std::fs::read(&path).unwrap_or_default();
            let mut out = Vec::new();
            for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let Ok(entry) = serde_json::from_slice::<serde_json::Value>(line) else {
                    continue;
                };
                let stream = match entry.get("stream").and_then(|s| s.as_str()) {
                    Some("stdout") if stdout => 1,
                    Some("stderr") if stderr => 2,
                    _ => continue,
                };
                let msg = entry.get("log").and_then(|s| s.as_str()).unwrap_or("");
                if !tty {
                    out.extend_from_slice(&berth_common::shim::frame_header(stream, msg.len()));
                }
                out.extend_from_slice(msg.as_bytes());
            }
            out
        })
        .await
        .unwrap_or_default();
        let _ = io.write_all(&data).await;
        let _ = io.flush().await;
    }
}

/// Client ⇄ shim. Output frames pass through as they are without a TTY and
/// lose their headers with one; the client's half-close reaches the shim
/// as ours, so the process gets EOF on stdin while output keeps flowing.
async fn relay(client: HijackedIo, conn: Connection, tty: bool, stdin: bool) {
    let (mut client_r, mut client_w) = tokio::io::split(client);
    let Connection {
        mut reader,
        mut writer,
    } = conn;

    let input = async move {
        if !stdin {
            // Nothing to forward; keep our write side open until output ends.
            std::future::pending::<()>().await;
        }
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match client_r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if writer.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = writer.shutdown().await;
        std::future::pending::<()>().await;
    };

    let output = async move {
        let mut header = [0u8; 8];
        let mut payload = vec![0u8; 64 * 1024];
        loop {
            if reader.read_exact(&mut header).await.is_err() {
                break;
            }
            let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
            if !tty && client_w.write_all(&header).await.is_err() {
                return;
            }
            let mut left = len;
            while left > 0 {
                let n = left.min(payload.len());
                if reader.read_exact(&mut payload[..n]).await.is_err() {
                    let _ = client_w.shutdown().await;
                    return;
                }
                if client_w.write_all(&payload[..n]).await.is_err() {
                    return;
                }
                left -= n;
            }
            let _ = client_w.flush().await;
        }
        let _ = client_w.flush().await;
        let _ = client_w.shutdown().await;
    };

    // Output ending (process gone, or client gone) ends the session.
    tokio::select! {
        _ = output => {}
        _ = input => {}
    }
}
