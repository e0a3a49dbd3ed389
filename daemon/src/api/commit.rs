//! `POST /commit`: a new image from a container's changes (`docker commit`).
//!
//! As dockerd: a running container is paused during the diff unless
//! `pause=false` (and resumed after, also on error); the image config is
//! the request body (or empty) with the `changes` applied, then completed
//! from the container's own Config; the parent is the container's image.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use berth_images::import::CommitOptions;
use berth_images::layer::diff::write_diff;
use berth_images::modify::repo_tag_reference;
use berth_images::{changes, Digest};

use super::error::{ApiError, ApiResult};
use super::extract::{OptionalJsonBody, QueryParams};
use crate::containers::record::Status;
use crate::containers::ContainerError;
use crate::daemon::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/commit", post(commit))
}

async fn commit(
    State(state): State<AppState>,
    q: QueryParams,
    OptionalJsonBody(body): OptionalJsonBody<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let user_config = match body {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid JSON: the body must be a container config object",
            ))
        }
    };
    let name = q.get("container").unwrap_or("");
    let c = state.containers.get(name)?;
    match c.status() {
        Status::Removing => {
            return Err(ContainerError::Conflict(format!(
                "You cannot commit container {} which is being removed",
                c.id
            ))
            .into())
        }
        Status::Dead => {
            return Err(ContainerError::Conflict(format!(
                "You cannot commit container {} which is dead",
                c.id
            ))
            .into())
        }
        _ => {}
    }
    let repo = q.get("repo").unwrap_or("");
    let reference = if repo.is_empty() {
        None
    } else {
        Some(repo_tag_reference(repo, q.get("tag").unwrap_or(""))?)
    };
    let change_list: Vec<String> = q
        .get_all("changes")
        .into_iter()
        .filter(|s| !s.trim().is_empty())
        .map(str::to_owned)
        .collect();
    let mut config = user_config;
    changes::apply(&mut config, &change_list)?;

    let rec = c.snapshot();
    let container_config = match serde_json::to_value(&rec.config) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    merge(&mut config, &container_config);
    let parent = if rec.image_id.is_empty() {
        None
    } else {
        Some(Digest::parse(&rec.image_id)?)
    };
    let comment = q.get("comment").unwrap_or("").to_owned();
    let opts = CommitOptions {
        parent,
        config,
        changes: Vec::new(),
        author: q.get("author").unwrap_or("").to_owned(),
        comment: comment.clone(),
        created_by: rec.config.cmd.clone().unwrap_or_default().join(" "),
        reference: reference.clone(),
    };
    let layer = state
        .containers
        .settings
        .data_root
        .join("overlay/containers")
        .join(&rec.id);
    let pause = q.bool_or("pause", true);
    // In a task of its own, so a client going away cannot leave the
    // container paused.
    let task = tokio::spawn(async move {
        // As dockerd, a pause that fails (the container just exited) does
        // not stop the commit: a container that is not running needs none.
        let paused_here = pause
            && c.status() == Status::Running
            && match state.containers.pause(&c.id).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::debug!(container = %c.id, error = %e, "not paused for the commit");
                    false
                }
            };
        let store = state.images.clone();
        let result = tokio::task::spawn_blocking(move || {
            let diff = diff_to_file(&layer)?;
            store.create_from_diff(diff, &opts).map_err(ApiError::from)
        })
        .await
        .map_err(|e| ApiError::from_internal("commit task", e))
        .and_then(|r| r);
        // As dockerd: the event comes before the (deferred) unpause.
        let out = result.map(|image| {
            let id = image.id.to_string();
            let event = state
                .containers
                .event(&rec, "commit")
                .attr("comment", comment.as_str())
                .attr("imageID", id.as_str())
                .attr(
                    "imageRef",
                    reference.map(|r| r.familiar()).unwrap_or_default(),
                );
            state.events.publish(event);
            id
        });
        if paused_here {
            if let Err(e) = state.containers.unpause(&c.id).await {
                tracing::warn!(container = %c.id, error = %e, "unpausing after commit");
            }
        }
        out
    });
    let id = task
        .await
        .map_err(|e| ApiError::from_internal("commit task", e))??;
    Ok((StatusCode::CREATED, Json(json!({ "Id": id }))))
}

/// Writes the diff of the container's upper dir to an unlinked temporary
/// file next to it (a diff can be large) and returns it rewound.
fn diff_to_file(layer: &Path) -> ApiResult<File> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let upper = layer.join("upper");
    let tmp: PathBuf = layer.join(format!(
        "commit-{}-{}.tar",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let file = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(|e| ApiError::internal(format!("creating {}: {e}", tmp.display())))?;
    // Unlinked at once: the open handle keeps the data until dropped.
    let _ = fs::remove_file(&tmp);
    let mut file = write_diff(&upper, file).map_err(ApiError::from)?;
    use std::io::{Seek, SeekFrom, Write};
    file.flush()
        .and_then(|_| file.seek(SeekFrom::Start(0)))
        .map_err(|e| ApiError::internal(format!("writing the diff: {e}")))?;
    Ok(file)
}

fn is_empty(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(o)) => o.is_empty(),
        Some(_) => false,
    }
}

/// Completes the image config from the container's, as dockerd's commit
/// `merge`: unset fields are taken over, maps and Env are unioned with the
/// image config winning.
fn merge(user: &mut Map<String, Value>, cont: &Map<String, Value>) {
    let take = |user: &mut Map<String, Value>, key: &str| {
        if is_empty(user.get(key)) {
            if let Some(v) = cont.get(key).filter(|v| !v.is_null()) {
                user.insert(key.to_owned(), v.clone());
            }
        }
    };
    take(user, "User");
    take(user, "WorkingDir");
    take(user, "StopSignal");
    take(user, "Healthcheck");
    for key in ["ExposedPorts", "Volumes", "Labels"] {
        let Some(Value::Object(from)) = cont.get(key) else {
            continue;
        };
        if !matches!(user.get(key), Some(Value::Object(_))) {
            user.insert(key.to_owned(), Value::Object(Map::new()));
        }
        if let Some(Value::Object(into)) = user.get_mut(key) {
            for (k, v) in from {
                into.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }
    if let Some(Value::Array(from)) = cont.get("Env") {
        if !matches!(user.get("Env"), Some(Value::Array(_))) {
            user.insert("Env".into(), Value::Array(Vec::new()));
        }
        if let Some(Value::Array(into)) = user.get_mut("Env") {
            let key = |v: &Value| {
                v.as_str()
                    .map(|s| s.split('=').next().unwrap_or("").to_owned())
            };
            let have: Vec<Option<String>> = into.iter().map(key).collect();
            for v in from {
                if !have.contains(&key(v)) {
                    into.push(v.clone());
                }
            }
        }
    }
    if is_empty(user.get("Entrypoint")) {
        if is_empty(user.get("Cmd")) {
            take(user, "Cmd");
        }
        if user.get("Entrypoint").is_none_or(Value::is_null) {
            take(user, "Entrypoint");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_takes_unset_fields_and_unions_maps() {
        let cont = json!({
            "User": "nobody", "Cmd": ["sh"], "Env": ["A=1", "B=2"],
            "Labels": {"x": "1", "y": "2"}, "WorkingDir": "/w",
            "ExposedPorts": {"80/tcp": {}}, "Hostname": "abc",
        });
        let mut user = json!({"Env": ["B=3"], "Labels": {"y": "u"}, "Cmd": ["cat"]});
        let (Value::Object(c), Value::Object(u)) = (cont, &mut user) else {
            unreachable!()
        };
        merge(u, &c);
        assert_eq!(
            user,
            json!({
                "User": "nobody", "Cmd": ["cat"], "Env": ["B=3", "A=1"],
                "Labels": {"x": "1", "y": "u"}, "WorkingDir": "/w",
                "ExposedPorts": {"80/tcp": {}},
            })
        );
    }

    #[test]
    fn merge_keeps_entrypoint_without_cmd() {
        let cont = json!({"Cmd": ["sh"], "Entrypoint": ["/init"]});
        let mut user = json!({"Entrypoint": ["/app"]});
        let (Value::Object(c), Value::Object(u)) = (cont, &mut user) else {
            unreachable!()
        };
        merge(u, &c);
        assert_eq!(user, json!({"Entrypoint": ["/app"]}));
    }
}
