//! HTTP API: one router per resource over the daemon backend.
//!
//! Each resource module exposes `fn routes() -> Router<AppState>` with
//! plain paths (no `/vX.Y` prefix; [`service`] strips it before routing).
//! Add yours as one `.merge(x::routes())` line in [`router`]. Two routers
//! may register the same path for different methods; the same method and
//! path twice panics at startup.

pub mod archive;
pub mod attach_ws;
mod body_fields;
mod body_keys;
mod body_timeout;
pub mod build;
pub mod client_watch;
pub mod commit;
pub mod container_files;
pub mod containers;
pub mod distribution;
pub mod events;
pub mod exec;
pub mod images;
pub mod networks;
mod spec_paths;
pub mod stats;
pub mod swarm;
pub mod system;
mod unread_body;
pub mod volumes;

// Shared helpers for the resource routers.
pub mod error;
pub mod extract;
pub mod stream;
pub mod version;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::time::Instant;
use tower::Layer;

use crate::daemon::AppState;
use error::ApiError;
use version::Prefix;

pub use error::ApiResult;

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(system::routes())
        .merge(events::routes())
        .merge(images::routes())
        .merge(distribution::routes())
        .merge(containers::routes())
        .merge(volumes::routes())
        .merge(networks::routes())
        .merge(container_files::routes())
        .merge(archive::routes())
        .merge(stats::routes())
        .merge(exec::routes())
        .merge(attach_ws::routes())
        .merge(commit::routes())
        .merge(build::routes())
        .merge(swarm::routes())
        .route_layer(axum::middleware::from_fn(note_route))
        .fallback(fallback)
        .method_not_allowed_fallback(fallback)
        .with_state(state)
}

/// The full HTTP service: version prefix handling and request logging in
/// front of [`router`].
pub fn service(
    state: AppState,
) -> impl tower::Service<
    hyper::Request<hyper::body::Incoming>,
    Response = Response,
    Error = std::convert::Infallible,
    Future = impl Send,
> + Clone
       + Send
       + 'static {
    let app = axum::middleware::from_fn(prepare).layer(router(state.clone()));
    let app = tower::ServiceExt::map_request(app, |req: hyper::Request<hyper::body::Incoming>| {
        req.map(|b| {
            if http_body::Body::is_end_stream(&b) {
                Body::new(b)
            } else {
                Body::new(body_timeout::IdleTimeout::new(b, body_timeout::IDLE))
            }
        })
    });
    HotFirst { state, routed: app }
}

/// Answers a hot request (see [`hot_answer`]) at once, without the
/// middleware and the router; passes every other to `routed`.
#[derive(Clone)]
struct HotFirst<S> {
    state: AppState,
    routed: S,
}

impl<S> tower::Service<hyper::Request<hyper::body::Incoming>> for HotFirst<S>
where
    S: tower::Service<
        hyper::Request<hyper::body::Incoming>,
        Response = Response,
        Error = std::convert::Infallible,
    >,
{
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = futures_util::future::Either<
        std::future::Ready<Result<Response, std::convert::Infallible>>,
        S::Future,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.routed.poll_ready(cx)
    }

    fn call(&mut self, req: hyper::Request<hyper::body::Incoming>) -> Self::Future {
        use futures_util::future::Either;
        let started = Instant::now();
        // One with a body goes through the router, which reads it.
        if !http_body::Body::is_end_stream(req.body()) {
            return Either::Right(self.routed.call(req));
        }
        let uri = req.uri();
        let hot = match version::split_prefix(uri.path()) {
            Ok(Prefix::None) => Some((version::DEFAULT_VERSION, uri.path())),
            Ok(Prefix::Version(v, path)) => Some((v, path)),
            Err(_) => None,
        }
        .and_then(|(v, path)| hot_answer(&self.state, req.method(), path, uri.query(), v));
        match hot {
            Some(resp) => Either::Left(std::future::ready(Ok(finish(
                resp,
                req.method(),
                req.uri(),
                started,
            )))),
            None => Either::Right(self.routed.call(req)),
        }
    }
}

/// Changes a client must not cut in half by leaving, as dockerd carries
/// them out: `network connect` and `disconnect`. hyper drops a request's
/// future, unpolled even, when the client's end of file follows the
/// request at once; the server hands these to a task of their own as hyper
/// dispatches them.
pub fn must_finish(method: &Method, path: &str) -> bool {
    if method != Method::POST {
        return false;
    }
    let path = match version::split_prefix(path) {
        Ok(Prefix::Version(_, rest)) => rest,
        Ok(Prefix::None) => path,
        Err(_) => return false,
    };
    let mut parts = path.split('/');
    matches!(
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next()),
        (Some(""), Some("networks"), Some(id), Some("connect" | "disconnect"), None) if !id.is_empty()
    )
}

/// Strips and checks the version prefix, routes the request, reads what
/// a handler left of its request body, then logs the request.
async fn prepare(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let (body, unread) = unread_body::wrap(body);
    let mut req = Request::from_parts(parts, body);
    let method = req.method().clone();
    // A clone shares the request line's bytes: only logged, not copied.
    let uri = req.uri().clone();
    let mut resp = match version::split_prefix(uri.path()) {
        Err(e) => e.into_response(),
        Ok(Prefix::None) => next.run(req).await,
        Ok(Prefix::Version(v, rest)) => match strip_path(req.uri(), rest) {
            Ok(uri) => {
                *req.uri_mut() = uri;
                req.extensions_mut().insert(v);
                next.run(req).await
            }
            Err(e) => e.into_response(),
        },
    };
    // Also after a success: a tar reader stops at the end-of-archive
    // blocks while the CLI may still be sending its padding.
    unread.drain().await;
    if (resp.status().is_client_error() || resp.status().is_server_error())
        && method != Method::HEAD
    {
        resp = json_error(resp).await;
    }
    finish(resp, &method, &uri, started)
}

/// The headers every answer carries, then the metrics and the log line.
fn finish(mut resp: Response, method: &Method, uri: &Uri, started: Instant) -> Response {
    // As dockerd, every response names the server and its API version.
    let headers = resp.headers_mut();
    headers.insert(
        axum::http::header::SERVER,
        HeaderValue::from_static(system::SERVER_HEADER),
    );
    headers.insert(API_VERSION, HeaderValue::from_static(system::API_VERSION));
    headers.insert(OS_TYPE, HeaderValue::from_static("linux"));
    let status = resp.status().as_u16();
    let took = started.elapsed();
    let route = resp
        .extensions()
        .get::<RouteTemplate>()
        .map_or(UNMATCHED_ROUTE, |r| r.0);
    crate::metrics::api_request(method, route, status, took);
    let ms = took.as_secs_f64() * 1000.0;
    let (path, query) = (uri.path(), uri.query().unwrap_or(""));
    if status >= 400 {
        tracing::info!(%method, %path, %query, status, ms, "request");
    } else {
        tracing::debug!(%method, %path, %query, status, ms, "request");
    }
    resp
}

/// Requests clients poll in loops, answered before the middleware and
/// the router (by [`HotFirst`]).
///
/// `docker inspect`, compose and testcontainers' wait loops poll a
/// container's inspect document many times a second, and its answer is
/// kept serialised: axum's routing, per-route middleware and extractors
/// cost more than the answer. A hot request is recognised exactly and
/// gets what its route would answer, with the route's metrics label; any
/// other request, or a near miss, goes to the router.
fn hot_answer(
    state: &AppState,
    method: &Method,
    path: &str,
    query: Option<&str>,
    version: version::ApiVersion,
) -> Option<Response> {
    let mut resp = containers::inspect_hot(state, method, path, query, version)?;
    resp.extensions_mut()
        .insert(RouteTemplate(containers::INSPECT_ROUTE));
    Some(resp)
}

// Names parsed once, not at every response.
const API_VERSION: HeaderName = HeaderName::from_static("api-version");
const OS_TYPE: HeaderName = HeaderName::from_static("ostype");

/// The route template a request matched (e.g. `/containers/{id}/json`),
/// passed out on the response for the metrics.
#[derive(Clone)]
struct RouteTemplate(&'static str);

/// The metrics' route label of requests no route matched.
const UNMATCHED_ROUTE: &str = "unmatched";

async fn note_route(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|m| RouteTemplate(crate::metrics::route_label(m.as_str())));
    let mut resp = next.run(req).await;
    if let Some(route) = route {
        resp.extensions_mut().insert(route);
    }
    resp
}

/// An error answered in plain text (axum's own rejections: a path
/// segment that is not UTF-8, a query that does not parse) as the JSON
/// `{"message": …}` every client expects.
async fn json_error(resp: Response) -> Response {
    let is_json = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = match axum::body::to_bytes(body, 64 * 1024).await {
        Ok(b) => String::from_utf8_lossy(&b).trim().to_string(),
        Err(_) => String::new(),
    };
    let message = if text.is_empty() {
        parts
            .status
            .canonical_reason()
            .unwrap_or("error")
            .to_string()
    } else {
        text
    };
    ApiError::new(parts.status, message).into_response()
}

fn strip_path(uri: &Uri, path: &str) -> ApiResult<Uri> {
    let pq = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    pq.parse()
        .map_err(|e| ApiError::bad_request(format!("invalid request path: {e}")))
}

/// No route matched: 501 for endpoints of the API spec nobody implements
/// yet, 404 for anything else (dockerd's "page not found").
async fn fallback(method: Method, uri: Uri) -> ApiError {
    match spec_paths::find(method.as_str(), uri.path()) {
        Some(template) => {
            ApiError::not_implemented(format!("not implemented: {method} {template}"))
        }
        None => ApiError::not_found("page not found"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_connect_and_disconnect_must_finish() {
        for path in [
            "/networks/n/connect",
            "/v1.50/networks/n/connect",
            "/v1.41/networks/abc/disconnect",
        ] {
            assert!(must_finish(&Method::POST, path), "{path}");
        }
        for (method, path) in [
            (Method::GET, "/networks/n/connect"),
            (Method::POST, "/networks//connect"),
            (Method::POST, "/networks/n/connect/x"),
            (Method::POST, "/networks/create"),
            (Method::POST, "/containers/n/start"),
            (Method::POST, "/vx/networks/n/connect"),
        ] {
            assert!(!must_finish(&method, path), "{method} {path}");
        }
    }
}
