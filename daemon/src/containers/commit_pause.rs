//! The pause `docker commit` puts a running container in while it reads
//! the diff. A `committing` marker is recorded before the pause and cleared
//! after the resume, so a berthd killed in between resumes the container
//! at its next start instead of leaving it frozen for no one.

use super::core::Containers;
use super::crashpoint;
use super::error::Result;
use super::record::{Pending, Status};

impl Containers {
    /// Pause `id` for a commit if it is running and can be; true when it
    /// was paused here (and [`Containers::resume_after_commit`] must follow).
    pub async fn pause_for_commit(&self, id: &str) -> Result<bool> {
        let c = self.get(id)?;
        {
            let _op = c.op.lock().await;
            if c.status() != Status::Running {
                return Ok(false);
            }
            let mut r = c.lock();
            if r.pending.is_some() {
                return Ok(false);
            }
            r.pending = Some(Pending::Committing);
            self.save(&r)?;
        }
        // As dockerd, a pause that fails (the container just exited) does
        // not stop the commit: a container that is not running needs none.
        if let Err(e) = self.pause(id).await {
            self.clear_commit_marker(id);
            tracing::debug!(%id, error = %e, "not paused for the commit");
            return Ok(false);
        }
        crashpoint::reached("commit:after-pause");
        Ok(true)
    }

    /// Undo [`Containers::pause_for_commit`].
    pub async fn resume_after_commit(&self, id: &str) -> Result<()> {
        let result = self.unpause(id).await;
        self.clear_commit_marker(id);
        result
    }

    fn clear_commit_marker(&self, id: &str) {
        let Ok(c) = self.get(id) else { return };
        let mut r = c.lock();
        if r.pending == Some(Pending::Committing) {
            r.pending = None;
            if let Err(e) = self.save(&r) {
                tracing::warn!(%id, error = %e, "clearing the commit marker");
            }
        }
    }
}
