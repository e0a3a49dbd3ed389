//! Kept answers for `GET /containers/json` and `GET /containers/{id}/json`:
//! each container keeps its list entry and its inspect document serialised,
//! tagged with the record version and the network generation they were
//! built from, and rebuilds them only when either moved. A list is then a
//! sort of kept entries and a copy of their bytes, without a clone of every
//! record, a JSON tree per container or a network lock per container.
//!
//! The one time-dependent field, the list's `Status` text ("Up 5 minutes"),
//! is written at each request from the kept state.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde_json::Value;

use super::core::{Container, Containers};
use super::record::{ContainerRecord, State, Status};
use super::timefmt;

/// What a container keeps; see the module comment.
#[derive(Default)]
pub struct Views {
    summary: Mutex<Option<Kept<Arc<Summary>>>>,
    /// One per [`InspectShape`], each kept once asked for.
    inspect: [Mutex<Option<Kept<Bytes>>>; 3],
}

/// A view and the record version and network generation it was built from.
struct Kept<T> {
    version: u64,
    net_gen: u64,
    value: T,
}

/// How the inspect document differs by API version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InspectShape {
    Current,
    /// Before 1.45: other aliases on user networks (`network::legacy_aliases`).
    Before145,
    /// Before 1.42: that, and the HostConfig still has `KernelMemory`.
    Before142,
}

impl InspectShape {
    /// `inspect_record`'s document, answered as this version's dockerd does.
    pub fn apply(self, v: &mut Value) {
        if let Some(hc) = v.get_mut("HostConfig") {
            super::host_config_view::dockerd_shape(
                hc,
                self == InspectShape::Before142,
                &super::host_config_view::DEFAULT_MASKS,
            );
        }
        if self != InspectShape::Current {
            crate::network::legacy_aliases(v);
        }
    }
}

/// A container's list entry.
pub struct Summary {
    /// Creation time (ns since the epoch): the list's order.
    pub created: i64,
    /// What the `Status` text is written from.
    pub state: State,
    /// The entry serialised without `Status`, from its first key on
    /// (the opening brace left out).
    rest: Box<str>,
}

impl Summary {
    pub fn status(&self) -> Status {
        self.state.status
    }

    /// Append the entry, with its `Status` text as of now.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"Status\":");
        // A String always serialises.
        let _ = serde_json::to_writer(&mut *out, &super::query::state_text(&self.state));
        out.push(b',');
        out.extend_from_slice(self.rest.as_bytes());
    }
}

impl Containers {
    fn net_generation(&self) -> u64 {
        self.networks.get().map_or(0, |n| n.generation())
    }

    /// The view kept in `slot`, or one `build` makes from the record when
    /// the record or the networks changed since it was kept.
    fn kept<T: Clone>(
        &self,
        c: &Container,
        slot: &Mutex<Option<Kept<T>>>,
        build: impl FnOnce(ContainerRecord) -> T,
    ) -> T {
        // Read before building: a change in between leaves an older tag on
        // newer data, which only costs a rebuild next time.
        let net_gen = self.net_generation();
        let version = c.version();
        {
            let kept = slot.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(k) = kept.as_ref() {
                if k.version == version && k.net_gen == net_gen {
                    return k.value.clone();
                }
            }
        }
        let (rec, version) = {
            let r = c.lock();
            (r.clone(), c.version())
        };
        let value = build(rec);
        let mut kept = slot.lock().unwrap_or_else(|p| p.into_inner());
        // Never replace a newer view another request built meanwhile.
        if kept.as_ref().is_none_or(|k| k.version <= version) {
            *kept = Some(Kept {
                version,
                net_gen,
                value: value.clone(),
            });
        }
        value
    }

    /// `c`'s list entry.
    pub(super) fn summary_view(&self, c: &Container) -> Arc<Summary> {
        self.kept(c, &c.views.summary, |rec| {
            let mut v = self.summary(&rec, false);
            if let Value::Object(m) = &mut v {
                m.remove("Status");
            }
            let json = v.to_string();
            let rest = json.strip_prefix('{').unwrap_or(&json).into();
            Arc::new(Summary {
                created: timefmt::parse(&rec.created)
                    .and_then(|t| t.timestamp_nanos_opt())
                    .unwrap_or(0),
                state: rec.state,
                rest,
            })
        })
    }

    /// `c`'s inspect document (without sizes) in `shape`, serialised.
    pub(super) fn inspect_view(&self, c: &Container, shape: InspectShape) -> Bytes {
        self.kept(c, &c.views.inspect[shape as usize], |rec| {
            let mut v = self.inspect_record(&rec, false);
            shape.apply(&mut v);
            Bytes::from(v.to_string())
        })
    }
}
