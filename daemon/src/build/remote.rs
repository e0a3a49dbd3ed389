//! What a build fetches from elsewhere: a `remote=` context (a git
//! repository, an http(s) tarball or a lone Dockerfile, told apart as
//! dockerd does) and the URL sources of `ADD`.
//!
//! Downloads stream to files under the build's directory with a size cap
//! and time limits; git runs as a host binary on data it only stores
//! (no hooks run on clone), with local and `ext::` transports refused so a
//! remote cannot make it read host files or run commands.

use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::context::{extract_spool, new_build_dir, BuildContext, Spool};
use super::BuildError;

/// Largest remote context or `ADD` download accepted.
const MAX_DOWNLOAD: u64 = 8 << 30;
/// A git fetch that has not finished after this long is stopped.
const GIT_TIMEOUT: Duration = Duration::from_secs(600);

/// A file fetched over http(s).
pub struct Downloaded {
    pub content_type: String,
    /// `Last-Modified`, as seconds since the epoch.
    pub modified: Option<i64>,
}

pub fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// dockerd's rule for a git remote: a git or ssh scheme, a GitHub path,
/// or an http(s) URL ending in `.git` (before any `#ref:dir` fragment).
pub fn is_git_url(s: &str) -> bool {
    if s.starts_with("git://") || s.starts_with("git@") || s.starts_with("github.com/") {
        return true;
    }
    let base = s.split('#').next().unwrap_or(s);
    is_url(s) && base.ends_with(".git")
}

/// GET `url` into `dest`, at most [`MAX_DOWNLOAD`] bytes.
pub async fn download(url: &str, dest: &Path) -> Result<Downloaded, BuildError> {
    let fail = |e: String| BuildError::Step(format!("failed to GET {url}: {e}"));
    let resp = crate::fetch::get(url).await.map_err(BuildError::Step)?;
    if resp.content_length().is_some_and(|n| n > MAX_DOWNLOAD) {
        return Err(fail(format!("larger than {MAX_DOWNLOAD} bytes")));
    }
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let modified = resp
        .headers()
        .get(reqwest::header::LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok())
        .map(|t| t.timestamp());
    let mut file = tokio::fs::File::create(dest)
        .await
        .map_err(|e| BuildError::Internal(format!("creating {}: {e}", dest.display())))?;
    let mut stream = resp.bytes_stream();
    let mut total = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| fail(e.to_string()))?;
        total += chunk.len() as u64;
        if total > MAX_DOWNLOAD {
            return Err(fail(format!("larger than {MAX_DOWNLOAD} bytes")));
        }
        file.write_all(&chunk)
            .await
            .map_err(|e| BuildError::Internal(format!("writing {}: {e}", dest.display())))?;
    }
    file.flush()
        .await
        .map_err(|e| BuildError::Internal(format!("writing {}: {e}", dest.display())))?;
    Ok(Downloaded {
        content_type,
        modified,
    })
}

/// The context named by `remote=`. A plain-text download is the
/// Dockerfile of an otherwise empty context, stored as `dockerfile`.
pub async fn context(
    remote: &str,
    dockerfile: &str,
    tmp: &Path,
) -> Result<BuildContext, BuildError> {
    let bc = new_build_dir(tmp)?;
    if is_git_url(remote) {
        clone(remote, &bc).await?;
        return Ok(bc);
    }
    if !is_url(remote) {
        return Err(BuildError::Invalid(format!(
            "unable to prepare context: remote URL {remote:?} is neither a git repository nor an http(s) URL"
        )));
    }
    let spool = bc.dir.join("context.tar");
    let got = download(remote, &spool)
        .await
        .map_err(|e| BuildError::Invalid(format!("unable to prepare context: {e}")))?;
    if got.content_type.starts_with("text/plain") || !looks_like_archive(&spool)? {
        let name = if dockerfile.is_empty() {
            "Dockerfile"
        } else {
            dockerfile
        };
        if name.contains('/') || name == "." || name == ".." {
            return Err(BuildError::Invalid(format!(
                "unable to prepare context: the Dockerfile of a remote file must be a plain name, not {name:?}"
            )));
        }
        std::fs::rename(&spool, bc.ctx().join(name))
            .map_err(|e| BuildError::Internal(format!("storing the remote Dockerfile: {e}")))?;
        return Ok(bc);
    }
    extract_spool(&bc, Spool::File(spool)).await?;
    Ok(bc)
}

/// A tar (at offset 257 "ustar") or a compressed stream.
fn looks_like_archive(path: &Path) -> Result<bool, BuildError> {
    use std::io::Read;
    let mut head = [0u8; 262];
    let mut f = std::fs::File::open(path)
        .map_err(|e| BuildError::Internal(format!("reading the remote context: {e}")))?;
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => {
                return Err(BuildError::Internal(format!(
                    "reading the remote context: {e}"
                )))
            }
        }
    }
    let head = &head[..n];
    let compressed = head.starts_with(&[0x1f, 0x8b])
        || head.starts_with(b"BZh")
        || head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00])
        || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]);
    Ok(compressed || (n >= 262 && &head[257..262] == b"ustar"))
}

/// `URL#ref:subdir` → (URL, ref, subdir).
fn split_fragment(remote: &str) -> (&str, &str, &str) {
    match remote.split_once('#') {
        None => (remote, "", ""),
        Some((url, frag)) => match frag.split_once(':') {
            Some((r, dir)) => (url, r, dir),
            None => (url, frag, ""),
        },
    }
}

async fn git(dir: &Path, args: &[&str]) -> Result<(), BuildError> {
    let mut cmd = tokio::process::Command::new("git");
    cmd.current_dir(dir)
        .args([
            "-c",
            "protocol.file.allow=never",
            "-c",
            "protocol.ext.allow=never",
        ])
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_PROTOCOL_FROM_USER", "0")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(GIT_TIMEOUT, cmd.output())
        .await
        .map_err(|_| {
            BuildError::Invalid(format!(
                "unable to prepare context: git {} timed out",
                args[0]
            ))
        })?
        .map_err(|e| BuildError::Invalid(format!("unable to prepare context: running git: {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(BuildError::Invalid(format!(
            "unable to prepare context: unable to 'git {}': {}",
            args[0],
            err.trim()
        )));
    }
    Ok(())
}

/// Fetch the ref (default: the remote's HEAD) of a repository into the
/// context, then keep only `subdir` (resolved inside the checkout).
async fn clone(remote: &str, bc: &BuildContext) -> Result<(), BuildError> {
    let (url, reference, subdir) = split_fragment(remote);
    let url = match url.strip_prefix("github.com/") {
        Some(rest) => format!("https://github.com/{rest}"),
        None => url.to_owned(),
    };
    let checkout = bc.dir.join("git");
    std::fs::create_dir_all(&checkout)
        .map_err(|e| BuildError::Internal(format!("creating the checkout: {e}")))?;
    git(&checkout, &["init", "-q"]).await?;
    let refspec = if reference.is_empty() {
        "HEAD"
    } else {
        reference
    };
    // Shallow when the server can (git's smart protocol), else whole (the
    // dumb HTTP transport of a static server cannot).
    if git(
        &checkout,
        &["fetch", "-q", "--depth", "1", "--", &url, refspec],
    )
    .await
    .is_err()
    {
        git(&checkout, &["fetch", "-q", "--", &url, refspec]).await?;
    }
    git(&checkout, &["checkout", "-q", "FETCH_HEAD"]).await?;
    git(
        &checkout,
        &[
            "submodule",
            "update",
            "-q",
            "--init",
            "--recursive",
            "--depth",
            "1",
        ],
    )
    .await?;
    let _ = std::fs::remove_dir_all(checkout.join(".git"));
    let source = if subdir.is_empty() {
        checkout.clone()
    } else {
        let view =
            crate::containers::archive::FsView::new(vec![crate::containers::archive::ViewMount {
                destination: "/".into(),
                source: checkout.clone(),
                read_only: true,
            }])
            .map_err(|e| BuildError::Internal(e.to_string()))?;
        let parts = view.resolve(subdir.as_bytes(), true).map_err(|e| {
            BuildError::Invalid(format!(
                "unable to prepare context: subdirectory {subdir}: {e}"
            ))
        })?;
        let path = parts.iter().fold(checkout.clone(), |p, c| p.join(c));
        if !std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            return Err(BuildError::Invalid(format!(
                "unable to prepare context: subdirectory {subdir} is not a directory of the repository"
            )));
        }
        path
    };
    let ctx = bc.ctx();
    std::fs::remove_dir(&ctx)
        .and_then(|()| std::fs::rename(&source, &ctx))
        .map_err(|e| BuildError::Internal(format!("storing the checkout: {e}")))?;
    if checkout.exists() {
        berth_common::tree::remove_all(&checkout)
            .map_err(|e| BuildError::Internal(format!("removing the checkout: {e}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remotes_are_told_apart_like_dockerd() {
        for git in [
            "git://h/r",
            "git@github.com:a/b.git",
            "github.com/a/b",
            "https://h/r.git",
            "https://h/r.git#main:sub",
        ] {
            assert!(is_git_url(git), "{git}");
        }
        for not in ["https://h/ctx.tar.gz", "http://h/Dockerfile", "/tmp/x.git"] {
            assert!(!is_git_url(not), "{not}");
        }
        assert_eq!(split_fragment("u.git#v1:a/b"), ("u.git", "v1", "a/b"));
        assert_eq!(split_fragment("u.git#v1"), ("u.git", "v1", ""));
        assert_eq!(split_fragment("u.git"), ("u.git", "", ""));
    }
}
