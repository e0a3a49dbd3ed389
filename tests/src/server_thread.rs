//! The thread of a stand-in server a test runs (token server, corrupting
//! or stalling proxies): told to stop and joined when dropped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

pub struct ServerThread {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ServerThread {
    /// `thread` runs until `stop` is set.
    pub fn new(stop: Arc<AtomicBool>, thread: JoinHandle<()>) -> ServerThread {
        ServerThread {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
