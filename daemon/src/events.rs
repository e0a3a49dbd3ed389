//! Event bus: publish, history for `since`, filtered subscriptions.
//!
//! Publishing is one call:
//! `state.events.publish(Event::new(EventType::Container, "start", &id).attr("name", name))`.

use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::{broadcast, watch};

/// Events kept for `since` replay (dockerd keeps 256).
pub const HISTORY_LEN: usize = 2048;
/// Buffered events per live subscriber before it is counted as lagging.
const LIVE_BUFFER: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Builder,
    Config,
    Container,
    Daemon,
    Image,
    Network,
    Node,
    Plugin,
    Secret,
    Service,
    Volume,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Builder => "builder",
            EventType::Config => "config",
            EventType::Container => "container",
            EventType::Daemon => "daemon",
            EventType::Image => "image",
            EventType::Network => "network",
            EventType::Node => "node",
            EventType::Plugin => "plugin",
            EventType::Secret => "secret",
            EventType::Service => "service",
            EventType::Volume => "volume",
        }
    }
}

/// One event, as dockerd's `events.Message`.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: EventType,
    pub action: String,
    pub actor_id: String,
    pub attributes: BTreeMap<String, String>,
    /// "local" or "swarm".
    pub scope: &'static str,
    /// Nanoseconds since the Unix epoch.
    pub time_nano: i64,
}

impl Event {
    /// An event stamped with the current time.
    pub fn new(kind: EventType, action: impl Into<String>, actor_id: impl Into<String>) -> Self {
        Event {
            kind,
            action: action.into(),
            actor_id: actor_id.into(),
            attributes: BTreeMap::new(),
            scope: "local",
            time_nano: now_nanos(),
        }
    }

    /// Add an actor attribute (`name`, `image`, labels, `exitCode`, ...).
    pub fn attr(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.attributes.insert(key.into(), value.into());
        self
    }

    /// Add several attributes, e.g. a container's labels.
    pub fn attrs<K: Into<String>, V: Into<String>>(
        mut self,
        items: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        for (k, v) in items {
            self.attributes.insert(k.into(), v.into());
        }
        self
    }

    /// The wire JSON: Type, Action, Actor{ID, Attributes}, scope, time,
    /// timeNano, plus the legacy status/id/from of container and image
    /// events.
    pub fn to_json(&self) -> Value {
        let mut obj = Map::new();
        if matches!(self.kind, EventType::Container | EventType::Image) {
            obj.insert("status".into(), json!(self.action));
            obj.insert("id".into(), json!(self.actor_id));
            if self.kind == EventType::Container {
                if let Some(image) = self.attributes.get("image") {
                    obj.insert("from".into(), json!(image));
                }
            }
        }
        obj.insert("Type".into(), json!(self.kind.as_str()));
        obj.insert("Action".into(), json!(self.action));
        obj.insert(
            "Actor".into(),
            json!({ "ID": self.actor_id, "Attributes": self.attributes }),
        );
        obj.insert("scope".into(), json!(self.scope));
        obj.insert(
            "time".into(),
            json!(self.time_nano.div_euclid(1_000_000_000)),
        );
        obj.insert("timeNano".into(), json!(self.time_nano));
        Value::Object(obj)
    }
}

pub fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// The daemon's event bus. Cheap to share (`Arc` inside).
#[derive(Clone)]
pub struct Events {
    inner: Arc<Inner>,
}

struct Inner {
    history: Mutex<VecDeque<Arc<Event>>>,
    live: broadcast::Sender<Arc<Event>>,
    /// Set when the daemon shuts down, so open streams end at once.
    closing: watch::Sender<bool>,
}

/// A subscription: the matching past events, then the live ones.
pub struct Subscription {
    pub past: Vec<Arc<Event>>,
    pub live: broadcast::Receiver<Arc<Event>>,
    closing: watch::Receiver<bool>,
}

impl Subscription {
    /// Resolves when the daemon is shutting down.
    pub fn closing(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.closing.clone();
        async move {
            let _ = rx.wait_for(|closing| *closing).await;
        }
    }
}

impl Default for Events {
    fn default() -> Self {
        Self::new()
    }
}

impl Events {
    pub fn new() -> Self {
        let (live, _) = broadcast::channel(LIVE_BUFFER);
        Events {
            inner: Arc::new(Inner {
                history: Mutex::new(VecDeque::with_capacity(HISTORY_LEN)),
                live,
                closing: watch::Sender::new(false),
            }),
        }
    }

    pub fn publish(&self, event: Event) {
        tracing::debug!(kind = event.kind.as_str(), action = %event.action, id = %event.actor_id, "event");
        let event = Arc::new(event);
        let mut history = self.lock_history();
        if history.len() == HISTORY_LEN {
            history.pop_front();
        }
        history.push_back(event.clone());
        // Sent under the lock so a subscriber sees each event exactly once,
        // either in `past` or live. No receivers is not an error.
        let _ = self.inner.live.send(event);
    }

    /// Past events with `time_nano >= since_nano` (none when `since_nano`
    /// is None) and a receiver for everything published afterwards.
    pub fn subscribe(&self, since_nano: Option<i64>) -> Subscription {
        let history = self.lock_history();
        let past = match since_nano {
            Some(since) => history
                .iter()
                .filter(|e| e.time_nano >= since)
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        let live = self.inner.live.subscribe();
        Subscription {
            past,
            live,
            closing: self.inner.closing.subscribe(),
        }
    }

    /// Ends every open subscription's stream (daemon shutdown).
    pub fn shutdown(&self) {
        self.inner.closing.send_replace(true);
    }

    /// Live subscribers (Info.NEventsListener).
    pub fn listener_count(&self) -> usize {
        self.inner.live.receiver_count()
    }

    fn lock_history(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<Event>>> {
        // A panic while holding this lock cannot leave the deque invalid.
        self.inner
            .history
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape_with_legacy_fields() {
        let e = Event::new(EventType::Container, "start", "abc")
            .attr("image", "busybox")
            .attr("name", "c1");
        let v = e.to_json();
        assert_eq!(v["Type"], "container");
        assert_eq!(v["Action"], "start");
        assert_eq!(v["status"], "start");
        assert_eq!(v["id"], "abc");
        assert_eq!(v["from"], "busybox");
        assert_eq!(v["Actor"]["ID"], "abc");
        assert_eq!(v["Actor"]["Attributes"]["name"], "c1");
        assert_eq!(v["scope"], "local");
        assert_eq!(v["time"].as_i64().unwrap(), e.time_nano / 1_000_000_000);
        let v = Event::new(EventType::Volume, "create", "vol").to_json();
        assert!(v.get("status").is_none());
        assert_eq!(v["Actor"]["Attributes"], json!({}));
    }

    #[tokio::test]
    async fn since_replays_history_then_live() {
        let bus = Events::new();
        bus.publish(Event::new(EventType::Image, "tag", "a"));
        let mut late = Event::new(EventType::Image, "untag", "b");
        late.time_nano += 1;
        let cut = late.time_nano;
        bus.publish(late);
        let mut sub = bus.subscribe(Some(cut));
        assert_eq!(sub.past.len(), 1);
        assert_eq!(sub.past[0].actor_id, "b");
        assert!(bus.subscribe(None).past.is_empty());
        bus.publish(Event::new(EventType::Image, "delete", "c"));
        let live = sub.live.recv().await.unwrap();
        assert_eq!(live.action, "delete");
        bus.shutdown();
        tokio::time::timeout(std::time::Duration::from_secs(5), sub.closing())
            .await
            .expect("shutdown did not reach the subscription");
    }

    #[test]
    fn history_is_bounded() {
        let bus = Events::new();
        for i in 0..HISTORY_LEN + 5 {
            bus.publish(Event::new(EventType::Volume, "create", i.to_string()));
        }
        let sub = bus.subscribe(Some(0));
        assert_eq!(sub.past.len(), HISTORY_LEN);
        assert_eq!(sub.past[0].actor_id, "5");
    }
}
