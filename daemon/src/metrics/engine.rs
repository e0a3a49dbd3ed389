//! The metrics themselves. Names follow dockerd's where it has the same
//! figure (`engine_daemon_*`); the others are berth's own (`berth_*`).

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{LazyLock, RwLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

type LatencyFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

struct Engine {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: LatencyFamily,
    states: Family<StateLabels, Gauge>,
    shims: Gauge,
    pulled: Counter,
    pushed: Counter,
    health_checks: Counter,
    health_failed: Counter,
}

/// 1 ms to about a minute, ×4 each.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 4.0, 9))
}

impl Engine {
    fn new() -> Engine {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let latency: LatencyFamily = Family::new_with_constructor(latency_histogram);
        let states = Family::<StateLabels, Gauge>::default();
        let (shims, pulled, pushed) = (Gauge::default(), Counter::default(), Counter::default());
        let (health_checks, health_failed) = (Counter::default(), Counter::default());
        registry.register(
            "engine_daemon_container_states_containers",
            "The count of containers in various states",
            states.clone(),
        );
        registry.register(
            "engine_daemon_health_checks",
            "The total number of health checks",
            health_checks.clone(),
        );
        registry.register(
            "engine_daemon_health_checks_failed",
            "The total number of failed health checks",
            health_failed.clone(),
        );
        registry.register(
            "berth_api_requests",
            "Engine API requests by method, route template and status",
            requests.clone(),
        );
        registry.register(
            "berth_api_request_duration_seconds",
            "Time until the response headers, by method and route template",
            latency.clone(),
        );
        registry.register(
            "berth_image_pull_bytes",
            "Layer bytes received from registries",
            pulled.clone(),
        );
        registry.register(
            "berth_image_push_bytes",
            "Layer bytes sent to registries",
            pushed.clone(),
        );
        registry.register("berth_shims", "Live berth-shim processes", shims.clone());
        Engine {
            registry,
            requests,
            latency,
            states,
            shims,
            pulled,
            pushed,
            health_checks,
            health_failed,
        }
    }
}

static ENGINE: LazyLock<Engine> = LazyLock::new(Engine::new);

/// A label value from a bounded set.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

/// One API request: `route` is the router's template (e.g.
/// `/containers/{id}/json`), so the label set stays bounded.
pub fn api_request(method: &axum::http::Method, route: &'static str, status: u16, took: Duration) {
    let method = method_label(method);
    ENGINE
        .requests
        .get_or_create(&RequestLabels {
            method,
            route,
            status,
        })
        .inc();
    ENGINE
        .latency
        .get_or_create(&RouteLabels { method, route })
        .observe(took.as_secs_f64());
}

/// A route template as a label value, kept for the daemon's life: the
/// templates are the router's own, a fixed set, so each is allocated once
/// instead of twice per request.
pub fn route_label(route: &str) -> &'static str {
    static ROUTES: LazyLock<RwLock<HashSet<&'static str>>> = LazyLock::new(Default::default);
    if let Some(r) = ROUTES.read().unwrap_or_else(|p| p.into_inner()).get(route) {
        return r;
    }
    let mut routes = ROUTES.write().unwrap_or_else(|p| p.into_inner());
    match routes.get(route) {
        Some(r) => r,
        None => {
            let r: &'static str = Box::leak(route.into());
            routes.insert(r);
            r
        }
    }
}

/// One healthcheck probe run and whether it passed.
pub fn health_probe(passed: bool) {
    ENGINE.health_checks.inc();
    if !passed {
        ENGINE.health_failed.inc();
    }
}

/// The figures read from the daemon at scrape time.
#[derive(Debug, Clone, Copy, Default)]
pub struct State {
    pub running: u64,
    pub paused: u64,
    pub stopped: u64,
    pub shims: u64,
    pub transferred: berth_distribution::Transferred,
}

/// Everything, in the Prometheus text format.
pub fn render(state: &State) -> String {
    let e = &*ENGINE;
    for (name, n) in [
        ("running", state.running),
        ("paused", state.paused),
        ("stopped", state.stopped),
    ] {
        e.states
            .get_or_create(&StateLabels { state: name })
            .set(n as i64);
    }
    e.shims.set(state.shims as i64);
    e.pulled
        .inner()
        .store(state.transferred.pulled, Ordering::Relaxed);
    e.pushed
        .inner()
        .store(state.transferred.pushed, Ordering::Relaxed);
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut out, &e.registry) {
        tracing::error!(error = %e, "encoding the metrics");
    }
    out
}

pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_what_was_recorded() {
        api_request(
            &axum::http::Method::GET,
            "/containers/{id}/json",
            200,
            Duration::from_millis(3),
        );
        health_probe(false);
        let text = render(&State {
            running: 2,
            shims: 2,
            ..Default::default()
        });
        assert!(text.contains(
            "berth_api_requests_total{method=\"GET\",route=\"/containers/{id}/json\",status=\"200\"} 1\n"
        ), "{text}");
        assert!(text.contains(
            "berth_api_request_duration_seconds_bucket{method=\"GET\",route=\"/containers/{id}/json\",le=\"0.004\"} 1\n"
        ), "{text}");
        assert!(text.contains("engine_daemon_container_states_containers{state=\"running\"} 2\n"));
        assert!(
            text.contains("engine_daemon_health_checks_failed_total 1\n"),
            "{text}"
        );
        assert!(text.contains("berth_shims 2\n"), "{text}");
        assert!(
            text.contains("# TYPE berth_image_pull_bytes_total counter\n"),
            "{text}"
        );
    }
}
