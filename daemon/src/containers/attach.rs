//! `POST /containers/{id}/attach`: relays between the hijacked client
//! connection and the shim's attach operation. Clients that attach before
//! the container starts (`docker run`) are parked and connected by `start`,
//! before the process can write anything.

use std::sync::Arc;

use berth_common::shim::Request;
use tokio::io::AsyncWriteExt;

use super::core::{Containers, PendingAttach};
use super::exec::relay::attach_session;
use super::record::{ContainerRecord, Status};
use crate::api::stream::HijackedIo;

#[derive(Debug, Clone, Default)]
pub struct AttachRequest {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub stream: bool,
    pub logs: bool,
    /// Typed by a client with a terminal, this sequence detaches it and
    /// leaves the container running.
    pub detach_keys: Vec<u8>,
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
                        request: req.clone(),
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
        tokio::spawn(attach_session(
            io,
            conn.reader,
            conn.writer,
            rec.config.tty,
            req.stdin,
            Some(req.detach_keys),
        ));
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
