//! Registry endpoints kept between operations: the HTTP client (with its
//! open connections and TLS sessions) and the base URL that last answered
//! the `/v2/` ping, per registry host. Without it every pull, push and
//! login built a client, connected afresh and, for an insecure registry
//! that speaks plain HTTP, first failed an HTTPS attempt.
//!
//! A kept endpoint is used only while the host's certificates in `certs.d`
//! are the ones it was built with and for `KEEP_FOR` after its last good
//! ping; a failed ping forgets it, and the caller probes every base again
//! with a new client, as without the cache. A configuration reload empties
//! the cache.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// How long an endpoint is trusted after its last good ping.
const KEEP_FOR: Duration = Duration::from_secs(60);
/// Hosts kept at most; the least recently used goes first.
const MAX_HOSTS: usize = 32;

/// What a host's client was built from: insecure or not, and the name,
/// size and modification time of every file in its certificate dirs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stamp {
    insecure: bool,
    certs: Vec<(PathBuf, u64, Option<SystemTime>)>,
}

impl Stamp {
    pub(crate) fn of(cert_dirs: &[PathBuf], host: &str, insecure: bool) -> Stamp {
        let mut certs = Vec::new();
        for d in cert_dirs {
            let Ok(entries) = std::fs::read_dir(d.join(host)) else {
                continue;
            };
            for e in entries.flatten() {
                let meta = e.metadata().ok();
                certs.push((
                    e.path(),
                    meta.as_ref().map_or(0, |m| m.len()),
                    meta.and_then(|m| m.modified().ok()),
                ));
            }
        }
        certs.sort();
        Stamp { insecure, certs }
    }
}

#[derive(Debug)]
struct Kept {
    stamp: Stamp,
    http: reqwest::Client,
    base: String,
    pinged: Instant,
    /// Order of the `keep` calls, for eviction.
    seq: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Endpoints {
    hosts: Mutex<HashMap<String, Kept>>,
    seq: AtomicU64,
}

impl Endpoints {
    /// The kept client and base for `host`, if still good for `stamp`.
    pub(crate) fn get(&self, host: &str, stamp: &Stamp) -> Option<(reqwest::Client, String)> {
        let hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        let k = hosts.get(host)?;
        (k.stamp == *stamp && k.pinged.elapsed() < KEEP_FOR)
            .then(|| (k.http.clone(), k.base.clone()))
    }

    /// Remember that `base` answered through `http`.
    pub(crate) fn keep(&self, host: &str, stamp: Stamp, http: reqwest::Client, base: String) {
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        if hosts.len() >= MAX_HOSTS && !hosts.contains_key(host) {
            if let Some(oldest) = hosts
                .iter()
                .min_by_key(|(_, k)| k.seq)
                .map(|(h, _)| h.clone())
            {
                hosts.remove(&oldest);
            }
        }
        hosts.insert(
            host.to_owned(),
            Kept {
                stamp,
                http,
                base,
                pinged: Instant::now(),
                seq: self.seq.fetch_add(1, Ordering::Relaxed),
            },
        );
    }

    pub(crate) fn clear(&self) {
        self.hosts.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    pub(crate) fn forget(&self, host: &str) {
        self.hosts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(host);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_endpoint_goes_when_the_certificates_change() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = vec![dir.path().to_path_buf()];
        let host = "reg.test:5000";
        let e = Endpoints::default();
        let before = Stamp::of(&dirs, host, false);
        let http = reqwest::Client::new();
        e.keep(host, before.clone(), http, "https://reg.test:5000".into());
        assert!(e.get(host, &before).is_some());
        assert!(
            e.get(host, &Stamp::of(&dirs, host, true)).is_none(),
            "insecure differs"
        );
        std::fs::create_dir(dir.path().join(host)).unwrap();
        std::fs::write(dir.path().join(host).join("ca.crt"), b"x").unwrap();
        let after = Stamp::of(&dirs, host, false);
        assert_ne!(before, after);
        assert!(e.get(host, &after).is_none());
        e.forget(host);
        assert!(e.get(host, &before).is_none());
    }

    #[test]
    fn the_least_recently_pinged_host_makes_room() {
        let e = Endpoints::default();
        let stamp = Stamp::of(&[], "h", false);
        for i in 0..=MAX_HOSTS {
            e.keep(
                &format!("h{i}"),
                stamp.clone(),
                reqwest::Client::new(),
                "http://h".into(),
            );
        }
        assert!(e.get("h0", &stamp).is_none());
        assert!(e.get(&format!("h{MAX_HOSTS}"), &stamp).is_some());
        assert_eq!(e.hosts.lock().unwrap().len(), MAX_HOSTS);
    }
}
