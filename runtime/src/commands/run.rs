//! `run`: create + start; in the foreground wait, forward signals, delete
//! the container and pass the exit code through. A terminal container in
//! the foreground without --console-socket gets its pty proxied by us.

use nix::unistd::Pid;

use super::create::{create, CreateOptions};
use crate::error::Result;
use crate::process::{console_proxy, wait};
use crate::spec::Bundle;
use crate::state::Root;

pub fn run(
    root: &Root,
    id: &str,
    mut opts: CreateOptions,
    detach: bool,
    keep: bool,
) -> Result<i32> {
    let mut ours = None;
    if !detach && opts.console_socket.is_none() {
        let terminal = Bundle::load(&opts.bundle)?
            .spec
            .process()
            .as_ref()
            .and_then(|p| p.terminal())
            .unwrap_or(false);
        if terminal {
            let (mine, theirs) = crate::tty::console_pair()?;
            ours = Some(mine);
            opts.console_fd = Some(theirs);
        }
    }
    if !detach {
        wait::block()?;
    }
    let c = create(root, id, &opts)?;
    drop(opts);
    let master = match &ours {
        Some(sock) => match crate::tty::recv_fd(sock) {
            Ok(m) => Some(m),
            Err(e) => {
                let _ = super::lifecycle::delete(root, id, true);
                return Err(e);
            }
        },
        None => None,
    };
    if let Err(e) = super::lifecycle::start(root, id) {
        let _ = super::lifecycle::delete(root, id, true);
        return Err(e);
    }
    if detach {
        return Ok(0);
    }
    let pid = Pid::from_raw(c.pid);
    let code = match master {
        Some(m) => console_proxy::proxy_until_exit(pid, m)?,
        None => wait::forward_until_exit(pid)?,
    };
    if !keep {
        let c = root.load(id)?;
        super::lifecycle::destroy(root, &c)?;
    }
    Ok(code)
}
