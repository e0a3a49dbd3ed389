//! Processes of a container: forking into namespaces, the init of a new
//! container, processes exec'd into a running one, and the last steps
//! before execve that both share.

pub mod console_proxy;
pub mod finalize;
pub mod init;
pub mod spawn;
pub mod tenant;
pub mod wait;
