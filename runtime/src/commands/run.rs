//! `run`: create + start; in the foreground wait, forward signals, delete
//! the container and pass the exit code through.

use nix::unistd::Pid;

use super::create::{create, CreateOptions};
use crate::error::Result;
use crate::process::wait;
use crate::state::Root;

pub fn run(root: &Root, id: &str, opts: &CreateOptions, detach: bool, keep: bool) -> Result<i32> {
    if !detach {
        wait::block()?;
    }
    let c = create(root, id, opts)?;
    if let Err(e) = super::lifecycle::start(root, id) {
        let _ = super::lifecycle::delete(root, id, true);
        return Err(e);
    }
    if detach {
        return Ok(0);
    }
    let code = wait::forward_until_exit(Pid::from_raw(c.pid))?;
    if !keep {
        let c = root.load(id)?;
        super::lifecycle::destroy(root, &c)?;
    }
    Ok(code)
}
