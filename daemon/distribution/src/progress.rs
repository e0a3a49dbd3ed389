//! The JSON message stream dockerd writes for pulls and pushes, which the
//! docker CLI renders as progress bars.

use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::error::Error;

/// Where an operation writes its messages. The HTTP layer turns an `Err`
/// that comes before any message into a plain HTTP error, and a later one
/// into an `errorDetail` line.
#[derive(Clone)]
pub struct Progress {
    tx: mpsc::Sender<Result<Value, Error>>,
}

impl Progress {
    pub fn channel(cap: usize) -> (Progress, mpsc::Receiver<Result<Value, Error>>) {
        let (tx, rx) = mpsc::channel(cap);
        (Progress { tx }, rx)
    }

    /// The client went away: the operation should stop.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Resolves when the client went away.
    pub async fn closed(&self) {
        self.tx.closed().await
    }

    pub async fn json(&self, v: Value) {
        let _ = self.tx.send(Ok(v)).await;
    }

    pub async fn fail(&self, e: Error) {
        let _ = self.tx.send(Err(e)).await;
    }

    /// `{"status": s}`
    pub async fn status(&self, s: impl Into<String>) {
        self.json(json!({"status": s.into()})).await
    }

    /// `{"status": s, "progressDetail": {}, "id": id}`
    pub async fn layer(&self, id: &str, s: &str) {
        self.json(json!({"status": s, "progressDetail": {}, "id": id}))
            .await
    }

    /// `{"status": s, "id": id}` (e.g. `latest: Pulling from library/busybox`).
    pub async fn message(&self, id: &str, s: impl Into<String>) {
        self.json(json!({"status": s.into(), "id": id})).await
    }

    pub async fn bar(&self, id: &str, s: &str, current: u64, total: u64) {
        self.json(json!({
            "status": s,
            "progressDetail": {"current": current, "total": total},
            "progress": progress_bar(current, total),
            "id": id,
        }))
        .await
    }
}

/// dockerd's `[====>    ] 1.2MB/3.4MB`.
pub fn progress_bar(current: u64, total: u64) -> String {
    const WIDTH: u64 = 50;
    if total == 0 {
        return human(current);
    }
    let filled = (current.saturating_mul(WIDTH) / total).min(WIDTH);
    let mut bar = "=".repeat(filled as usize);
    if filled < WIDTH {
        bar.push('>');
        bar.push_str(&" ".repeat((WIDTH - filled - 1) as usize));
    }
    format!("[{bar}] {}/{}", human(current), human(total))
}

/// Sizes as dockerd's progress shows them: 1.500MB.
pub fn human(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{n}B")
    } else {
        format!("{v:.3}{}", units[i])
    }
}

/// 12 hex digits, as dockerd's `stringid.TruncateID` shows digests.
pub fn short_id(d: &berth_images::Digest) -> String {
    d.hex()[..12].to_owned()
}
