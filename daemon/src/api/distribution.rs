//! Registry endpoints over `berth_distribution`: pull (`POST
//! /images/create?fromImage=`), push, `POST /auth` and `GET
//! /distribution/{name}/json`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use berth_distribution::{AuthConfig, ErrorKind, Progress, PullOptions, PushOptions};
use berth_images::Reference;

use super::client_watch::ClientWatch;
use super::error::{ApiError, ApiResult};
use super::extract::QueryParams;
use super::stream::json_progress;
use crate::daemon::AppState;
use crate::events::{Event, EventType};

impl From<berth_distribution::Error> for ApiError {
    fn from(e: berth_distribution::Error) -> Self {
        let msg = e.to_string();
        match e.kind() {
            ErrorKind::InvalidArgument => ApiError::bad_request(msg),
            ErrorKind::NotFound => ApiError::not_found(msg),
            ErrorKind::Unauthorized => ApiError::new(StatusCode::UNAUTHORIZED, msg),
            ErrorKind::Forbidden => ApiError::forbidden(msg),
            ErrorKind::Upstream | ErrorKind::Internal => ApiError::internal(msg),
        }
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/auth", post(auth))
        .route("/distribution/{*rest}", get(inspect))
        .route("/images/search", get(search))
}

/// `GET /images/search?term=&limit=&filters=`: the index's answer, with
/// dockerd's filters (`is-official`, `is-automated`, `stars`) applied here.
async fn search(
    State(state): State<AppState>,
    q: QueryParams,
    headers: HeaderMap,
) -> ApiResult<Json<Vec<serde_json::Value>>> {
    let filters = q.filters()?;
    filters.validate(&["is-automated", "is-official", "stars"])?;
    let bool_filter = |name: &str| -> ApiResult<Option<bool>> {
        match filters.get(name).first() {
            None => Ok(None),
            Some(v) => match v.as_str() {
                "true" | "1" => Ok(Some(true)),
                "false" | "0" => Ok(Some(false)),
                _ => Err(ApiError::bad_request(format!(
                    "invalid filter '{name}={v}'"
                ))),
            },
        }
    };
    let official = bool_filter("is-official")?;
    let automated = bool_filter("is-automated")?;
    let mut min_stars = 0i64;
    for v in filters.get("stars") {
        let n: i64 = v
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid filter 'stars={v}'")))?;
        min_stars = min_stars.max(n);
    }
    let limit = match q.i64("limit")? {
        None | Some(0) => 25,
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
    };
    let term = q.get("term").unwrap_or("").to_owned();
    let auth = registry_auth(&headers)?;
    let results = state.registry.search(&term, limit, &auth).await?;
    let kept = results
        .into_iter()
        .filter(|r| {
            let stars = r["star_count"].as_i64().unwrap_or(0);
            let is_official = r["is_official"].as_bool().unwrap_or(false);
            stars >= min_stars
                && official.is_none_or(|o| o == is_official)
                && automated.is_none_or(|a| !a)
        })
        .collect();
    Ok(Json(kept))
}

fn registry_auth(headers: &HeaderMap) -> ApiResult<AuthConfig> {
    let h = headers
        .get("X-Registry-Auth")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    Ok(AuthConfig::from_header(h)?)
}

/// `POST /images/create?fromImage=NAME&tag=TAG|DIGEST&platform=`.
pub async fn pull(
    state: AppState,
    q: &QueryParams,
    headers: &HeaderMap,
    client: ClientWatch,
) -> ApiResult<Response> {
    let image = q.get("fromImage").unwrap_or("");
    let tag = q.get("tag").unwrap_or("");
    let mut r = Reference::parse_normalized(image)?;
    if !tag.is_empty() {
        r = match berth_images::Digest::parse(tag) {
            Ok(d) => r.with_digest(d),
            Err(_) => r.with_tag(tag)?,
        };
    }
    let all_tags = r.tag().is_none() && r.digest().is_none();
    let opts = PullOptions {
        reference: r,
        platform: q.get("platform").unwrap_or("").to_owned(),
        auth: registry_auth(headers)?,
    };
    let (progress, rx) = Progress::channel(64);
    let guard = progress.clone();
    let task = tokio::spawn(async move {
        let dist = state.registry.clone();
        let pull = async {
            if all_tags {
                dist.pull_all_tags(&opts, &progress).await
            } else {
                dist.pull(&opts, &progress)
                    .await
                    .map(|o| vec![(opts.reference.clone(), o)])
            }
        };
        let Some(res) = unless_client_left(pull, &progress, &client).await else {
            tracing::info!(reference = %opts.reference, "pull cancelled: the client went away");
            return;
        };
        match res {
            Ok(pulled) => {
                for (r, _) in pulled {
                    let name = r.familiar();
                    state
                        .events
                        .publish(Event::new(EventType::Image, "pull", &name).attr("name", &name));
                }
            }
            Err(e) => {
                tracing::info!(reference = %opts.reference, error = %e, "pull failed");
                progress.fail(e).await;
            }
        }
    });
    report_panic(task, guard);
    json_progress(rx).await
}

/// `POST /images/{name}/push?tag=`.
/// `work`'s result, or `None` once its client has gone: as dockerd, that
/// cancels a pull or a push. Seen at the next progress message, or on the
/// socket while none flows.
async fn unless_client_left<T>(
    work: impl std::future::Future<Output = T>,
    progress: &Progress,
    client: &ClientWatch,
) -> Option<T> {
    tokio::select! {
        res = work => Some(res),
        () = progress.closed() => None,
        () = client.gone() => None,
    }
}

pub async fn push(
    state: AppState,
    name: &str,
    q: &QueryParams,
    headers: &HeaderMap,
    client: ClientWatch,
) -> ApiResult<Response> {
    let mut r = Reference::parse_normalized(name)?;
    let tag = q.get("tag").unwrap_or("");
    if !tag.is_empty() {
        r = r.with_tag(tag)?;
    }
    let opts = PushOptions {
        reference: r,
        auth: registry_auth(headers)?,
    };
    {
        let (dist, r) = (state.registry.clone(), opts.reference.clone());
        tokio::task::spawn_blocking(move || dist.push_tags(&r))
            .await
            .map_err(|e| ApiError::from_internal("push", e))??;
    }
    let (progress, rx) = Progress::channel(64);
    let guard = progress.clone();
    let task = tokio::spawn(async move {
        let push = state.registry.push(&opts, &progress);
        let Some(res) = unless_client_left(push, &progress, &client).await else {
            tracing::info!(reference = %opts.reference, "push cancelled: the client went away");
            return;
        };
        match res {
            Ok(out) => {
                for (tag, _, _) in out.pushed {
                    let name = match opts.reference.clone().with_tag(&tag) {
                        Ok(r) => r.familiar(),
                        Err(_) => opts.reference.familiar(),
                    };
                    state
                        .events
                        .publish(Event::new(EventType::Image, "push", &name).attr("name", &name));
                }
            }
            Err(e) => {
                tracing::info!(reference = %opts.reference, error = %e, "push failed");
                progress.fail(e).await;
            }
        }
    });
    report_panic(task, guard);
    json_progress(rx).await
}

/// A pull or push that died must not look like a success to the client.
fn report_panic(task: tokio::task::JoinHandle<()>, progress: Progress) {
    tokio::spawn(async move {
        if let Err(e) = task.await {
            tracing::error!(error = %e, "registry operation failed");
            progress
                .fail(berth_distribution::Error::Internal(format!(
                    "registry operation failed: {e}"
                )))
                .await;
        }
    });
}

async fn auth(State(state): State<AppState>, body: Bytes) -> ApiResult<Json<Value>> {
    let cfg = AuthConfig::from_json(&body)?;
    let out = state.registry.login(&cfg).await?;
    Ok(Json(json!({
        "Status": out.status,
        "IdentityToken": out.identity_token,
    })))
}

async fn inspect(
    State(state): State<AppState>,
    Path(rest): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let Some(name) = rest.strip_suffix("/json") else {
        return Err(ApiError::not_found("page not found"));
    };
    let r = Reference::parse_normalized(name)?.with_default_tag();
    let auth = registry_auth(&headers)?;
    Ok(Json(state.registry.inspect(&r, &auth).await?))
}
