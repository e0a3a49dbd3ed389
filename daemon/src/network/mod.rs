//! Networking: bridge networks (the predefined `bridge` and user-defined
//! ones), per-container veth endpoints set up over netlink, IPAM, NAT,
//! published ports (forwarded by the kernel, with the userland proxy for
//! loopback) and the embedded DNS server.
//!
//! Containers call in at three points: [`Networks::prepare`] before the
//! spec is written (addresses, published ports, hosts/resolv.conf),
//! [`Networks::attach`] once the runtime has created the container's
//! namespaces (veth pairs, loopback, DNS listener) and
//! [`Networks::release`] when the container stops or is removed.

pub mod configured;
mod dns;
mod error;
pub mod ipam;
mod ipam6;
mod json;
mod nat;
mod netlink;
mod netns;
mod portfwd;
pub(crate) mod ports;
mod proxy;
mod records;

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use tokio::task::AbortHandle;

use crate::containers::record::ContainerRecord;
pub use error::{NetError, Result};
use ipam::{Cidr, Pool};
pub use json::legacy_aliases;
use nat::Nat;
use portfwd::{Forwarder, Mapping};
use records::{ContainerNet, Dirs, Endpoint, NetworkRecord};

pub const DEFAULT_BRIDGE: &str = "berth0";
const DEFAULT_MTU: u32 = 1500;

/// The daemon settings networking uses.
#[derive(Debug, Clone)]
pub struct NetConfig {
    pub data_root: PathBuf,
    /// Interface of the default `bridge` network.
    pub bridge: String,
    /// `bip`: the default bridge's address and prefix.
    pub bip: Option<String>,
    /// `fixed-cidr`: where default-bridge containers get addresses.
    pub fixed_cidr: Option<String>,
    pub mtu: u32,
    /// `ipv6` / `fixed-cidr-v6`: IPv6 on the default bridge.
    pub ipv6: bool,
    pub fixed_cidr_v6: Option<String>,
    pub iptables: bool,
    /// `userland-proxy`: berthd itself serves published ports on loopback
    /// (and to containers on the same bridge); the kernel does the rest.
    pub userland_proxy: bool,
}

struct State {
    nets: BTreeMap<String, NetworkRecord>,
    conts: BTreeMap<String, ContainerNet>,
}

pub struct Networks {
    cfg: NetConfig,
    dirs: Dirs,
    nat: Nat,
    fwd: Forwarder,
    state: Mutex<State>,
    /// See [`Networks::generation`]; bumped through [`StateGuard`].
    generation: std::sync::atomic::AtomicU64,
    /// Container ID → its published ports' proxies.
    tasks: Mutex<HashMap<String, Vec<proxy::Proxy>>>,
    /// Container ID → its embedded DNS server (one per container, kept
    /// while the container runs, whatever it connects or disconnects).
    dns: Mutex<HashMap<String, AbortHandle>>,
    /// `network connect`/`disconnect` events, as dockerd sends them when
    /// endpoints are plugged in or taken away.
    events: crate::events::Events,
    /// Networks whose bridge, address and NAT rules this process has set
    /// up; while the bridge exists they are not checked again per container.
    ready: Mutex<std::collections::HashSet<String>>,
}

/// The locked state; a mutable access bumps the generation (under the
/// lock, before the change).
struct StateGuard<'a> {
    state: MutexGuard<'a, State>,
    generation: &'a std::sync::atomic::AtomicU64,
}

impl std::ops::Deref for StateGuard<'_> {
    type Target = State;

    fn deref(&self) -> &State {
        &self.state
    }
}

impl std::ops::DerefMut for StateGuard<'_> {
    fn deref_mut(&mut self) -> &mut State {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        &mut self.state
    }
}

/// The `bridge` setting that turns the default bridge network off.
pub const NO_BRIDGE: &str = "none";

/// What `POST /networks/create` asks for.
#[derive(Debug, Default)]
pub struct CreateRequest {
    pub name: String,
    pub driver: String,
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub ip_range: Option<String>,
    /// IPAM `AuxiliaryAddresses`: names for addresses never handed out.
    pub aux_addresses: BTreeMap<String, String>,
    pub internal: bool,
    pub attachable: bool,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
    pub ipam_options: Option<BTreeMap<String, String>>,
    pub ipv6: bool,
    pub subnet6: Option<String>,
    pub gateway6: Option<String>,
}

fn internal(context: &str) -> impl FnOnce(std::io::Error) -> NetError + '_ {
    move |e| NetError::internal(context, e)
}

fn ignore_exists(r: std::io::Result<()>) -> std::io::Result<()> {
    match r {
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
        other => other,
    }
}

/// IPv4 routes of the host (destination, interface), from /proc/net/route.
fn host_routes() -> Vec<(Cidr, String)> {
    let text = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dst = u32::from_str_radix(f.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(f.get(7)?, 16).ok()?;
            if dst == 0 {
                return None;
            }
            // The words are the address bytes in network order, printed as
            // a native (little-endian) integer.
            let addr = Ipv4Addr::from(dst.to_le_bytes());
            let prefix = mask.count_ones() as u8;
            Some((Cidr { addr, prefix }, f[0].to_string()))
        })
        .collect()
}

/// A private /16 for a bridge that no route (except one through `bridge`
/// itself, left by an earlier run) already covers.
fn free_subnet(bridge: &str, taken: &[Cidr]) -> Option<Cidr> {
    let routes = host_routes();
    let candidates = (17..=31)
        .map(|b| Cidr {
            addr: Ipv4Addr::new(172, b, 0, 0),
            prefix: 16,
        })
        .chain((0..=255).map(|b| Cidr {
            addr: Ipv4Addr::new(10, b, 0, 0),
            prefix: 16,
        }));
    for c in candidates {
        let clash = routes
            .iter()
            .any(|(r, dev)| dev != bridge && r.overlaps(&c))
            || taken.iter().any(|t| t.overlaps(&c));
        if !clash {
            return Some(c);
        }
    }
    None
}

impl Networks {
    pub fn open(cfg: NetConfig, events: crate::events::Events) -> Result<Arc<Networks>> {
        let dirs =
            Dirs::new(&cfg.data_root).map_err(internal("creating the network state directory"))?;
        let nets = dirs
            .load_networks()
            .map_err(internal("reading network records"))?;
        let conts = dirs
            .load_containers()
            .map_err(internal("reading container endpoints"))?;
        let nat = Nat::detect(cfg.iptables);
        let fwd = Forwarder::detect(cfg.iptables, &cfg.bridge, cfg.userland_proxy);
        let this = Networks {
            nat,
            fwd,
            dirs,
            state: Mutex::new(State {
                nets: nets.into_iter().map(|n| (n.id.clone(), n)).collect(),
                conts: conts.into_iter().map(|c| (c.id.clone(), c)).collect(),
            }),
            generation: Default::default(),
            tasks: Mutex::new(HashMap::new()),
            dns: Mutex::new(HashMap::new()),
            events,
            ready: Mutex::new(std::collections::HashSet::new()),
            cfg,
        };
        this.ensure_default_network()?;
        Ok(Arc::new(this))
    }

    fn lock(&self) -> StateGuard<'_> {
        StateGuard {
            state: self.state.lock().unwrap_or_else(|p| p.into_inner()),
            generation: &self.generation,
        }
    }

    /// Bumped by every change to the networks and endpoints: what the
    /// container store's kept list and inspect answers are checked against.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The predefined `bridge` network's record, created on first start
    /// and updated when `bip`/`fixed-cidr`/`bridge` change.
    fn ensure_default_network(&self) -> Result<()> {
        let mut st = self.lock();
        let existing = st.nets.values().find(|n| n.predefined).cloned();
        if self.cfg.bridge == NO_BRIDGE {
            // As dockerd's `--bridge none`: no default network (a container
            // that names none is refused); one from an earlier start goes.
            if let Some(n) = existing {
                st.nets.remove(&n.id);
                self.dirs
                    .remove_network(&n.id)
                    .map_err(|e| NetError::internal("removing the default network", e))?;
            }
            return Ok(());
        }
        let wanted_subnet = match &self.cfg.bip {
            Some(bip) => Some(
                Cidr::parse(bip).map_err(|e| NetError::InvalidParameter(format!("bip: {e}")))?,
            ),
            None => None,
        };
        let range = match &self.cfg.fixed_cidr {
            Some(f) => Some(
                Cidr::parse(f)
                    .map_err(|e| NetError::InvalidParameter(format!("fixed-cidr: {e}")))?,
            ),
            None => None,
        };
        let mtu = if self.cfg.mtu > 0 {
            self.cfg.mtu
        } else {
            DEFAULT_MTU
        };
        let wanted6 = match (&self.cfg.fixed_cidr_v6, self.cfg.ipv6) {
            (_, false) => None,
            (Some(c), true) => Some(
                ipam6::Cidr6::parse(c)
                    .map_err(|e| NetError::InvalidParameter(format!("fixed-cidr-v6: {e}")))?,
            ),
            (None, true) => Some(
                existing
                    .as_ref()
                    .and_then(|n| n.pool6.as_ref().map(|p| p.subnet))
                    .unwrap_or_else(ipam6::random_ula),
            ),
        };
        if let Some(n) = &existing {
            let same_subnet = wanted_subnet
                .is_none_or(|w| w.network() == n.pool.subnet && w.addr == n.pool.gateway);
            if n.bridge == self.cfg.bridge
                && same_subnet
                && n.pool.range == range.map(|r| r.network())
                && n.pool6.as_ref().map(|p| p.subnet) == wanted6
                && n.mtu == mtu
            {
                return Ok(());
            }
        }
        let (subnet, gateway) = match wanted_subnet {
            Some(w) => (w.network(), Some(w.addr)),
            None => {
                let taken: Vec<Cidr> = st
                    .nets
                    .values()
                    .filter(|n| !n.predefined)
                    .map(|n| n.pool.subnet)
                    .collect();
                let s = free_subnet(&self.cfg.bridge, &taken).ok_or_else(|| {
                    NetError::Internal(
                        "no free private /16 for the default bridge; set \"bip\" in daemon.json"
                            .into(),
                    )
                })?;
                (s, None)
            }
        };
        let mut pool = Pool::new(subnet, gateway, range)
            .map_err(|e| NetError::InvalidParameter(e.to_string()))?;
        if let Some(old) = &existing {
            // Keep addresses of containers that still hold them.
            for (ip, owner) in &old.pool.allocated {
                if pool.subnet.contains(*ip) {
                    pool.allocated.insert(*ip, owner.clone());
                }
            }
        }
        let rec = NetworkRecord {
            id: existing
                .as_ref()
                .map(|n| n.id.clone())
                .unwrap_or_else(|| records::random_hex(32)),
            name: "bridge".into(),
            created: existing
                .as_ref()
                .map(|n| n.created.clone())
                .unwrap_or_else(crate::containers::timefmt::now),
            bridge: self.cfg.bridge.clone(),
            pool,
            internal: false,
            attachable: false,
            labels: BTreeMap::new(),
            options: [
                ("com.docker.network.bridge.default_bridge", "true"),
                ("com.docker.network.bridge.enable_icc", "true"),
                ("com.docker.network.bridge.enable_ip_masquerade", "true"),
                ("com.docker.network.bridge.host_binding_ipv4", "0.0.0.0"),
                ("com.docker.network.bridge.name", self.cfg.bridge.as_str()),
                ("com.docker.network.driver.mtu", &mtu.to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            predefined: true,
            pool6: match wanted6 {
                Some(s) => {
                    let mut p = ipam6::Pool6::new(s, None)
                        .map_err(|e| NetError::InvalidParameter(format!("fixed-cidr-v6: {e}")))?;
                    if let Some(old) = existing.as_ref().and_then(|n| n.pool6.as_ref()) {
                        p.allocated = old
                            .allocated
                            .iter()
                            .filter(|(ip, _)| p.subnet.contains(**ip))
                            .map(|(ip, o)| (*ip, o.clone()))
                            .collect();
                    }
                    Some(p)
                }
                None => None,
            },
            ipam_options: None,
            mtu,
        };
        self.dirs
            .save_network(&rec)
            .map_err(internal("saving the bridge network"))?;
        st.nets.insert(rec.id.clone(), rec);
        Ok(())
    }

    /// A bridge network by name, ID or ID prefix.
    fn find(&self, st: &State, reference: &str) -> Result<NetworkRecord> {
        if let Some(n) = st
            .nets
            .values()
            .find(|n| n.name == reference || n.id == reference)
        {
            return Ok(n.clone());
        }
        let matches: Vec<&NetworkRecord> = st
            .nets
            .values()
            .filter(|n| n.id.starts_with(reference))
            .collect();
        match matches.as_slice() {
            [one] if !reference.is_empty() => Ok((*one).clone()),
            [] | [_] => Err(NetError::NotFound(format!("network {reference} not found"))),
            _ => Err(NetError::NotFound(format!(
                "network {reference} is ambiguous ({} matches found based on ID prefix)",
                matches.len()
            ))),
        }
    }

    /// Create the bridge interface, its address and NAT if missing.
    fn ensure_bridge(&self, net: &NetworkRecord) -> Result<()> {
        let ctx = |what: &str| format!("{what} {} for network {}", net.bridge, net.name);
        let exists = netlink::link_index(&net.bridge)
            .map_err(|e| NetError::internal(ctx("looking up"), e))?
            .is_some();
        let mut ready = self.ready.lock().unwrap_or_else(|p| p.into_inner());
        if exists && ready.contains(&net.id) {
            return Ok(());
        }
        ready.remove(&net.id);
        if exists && !is_bridge(&net.bridge) {
            return Err(NetError::Forbidden(format!(
                "interface {} exists and is not a bridge: berth will not take it over for network {}",
                net.bridge, net.name
            )));
        }
        let mut nl =
            netlink::Netlink::open().map_err(|e| NetError::internal("opening netlink", e))?;
        if netlink::link_index(&net.bridge)
            .map_err(|e| NetError::internal(ctx("looking up"), e))?
            .is_none()
        {
            ignore_exists(nl.add_bridge(&net.bridge, net.mtu))
                .map_err(|e| NetError::internal(ctx("creating bridge"), e))?;
        }
        let idx = netlink::link_index(&net.bridge)
            .map_err(|e| NetError::internal(ctx("looking up"), e))?
            .ok_or_else(|| NetError::Internal(ctx("bridge vanished:")))?;
        ignore_exists(nl.add_addr(idx, net.pool.gateway, net.pool.subnet.prefix))
            .map_err(|e| NetError::internal(ctx("adding the gateway address to"), e))?;
        if let Some(p6) = &net.pool6 {
            // A bridge may come up with IPv6 off (sysctl default).
            let _ = std::fs::write(
                format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", net.bridge),
                "0",
            );
            ignore_exists(nl.add_ip(idx, p6.gateway.into(), p6.subnet.prefix))
                .map_err(|e| NetError::internal(ctx("adding the IPv6 gateway address to"), e))?;
        }
        nl.set_up(idx)
            .map_err(|e| NetError::internal(ctx("bringing up"), e))?;
        self.fwd.prepare_bridge(&net.bridge);
        self.nat
            .add(&net.bridge, &net.pool.subnet, net.internal)
            .map_err(NetError::Internal)?;
        Ok(())
    }

    fn remove_bridge(&self, net: &NetworkRecord) {
        self.ready
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&net.id);
        if !is_bridge(&net.bridge) {
            return;
        }
        if let Ok(Some(idx)) = netlink::link_index(&net.bridge) {
            match netlink::Netlink::open().and_then(|mut nl| nl.del_link(idx)) {
                Ok(()) => {}
                Err(e) => tracing::warn!(bridge = %net.bridge, error = %e, "deleting a bridge"),
            }
        }
        self.nat.remove(&net.bridge, &net.pool.subnet, net.internal);
    }

    // ---- networks ----------------------------------------------------

    pub fn create(&self, req: CreateRequest) -> Result<NetworkRecord> {
        match req.driver.as_str() {
            "" | "bridge" => {}
            "host" | "null" => {
                return Err(NetError::Forbidden(format!(
                    "only one instance of \"{}\" network is allowed",
                    req.driver
                )))
            }
            other => return Err(NetError::NotFound(format!("plugin \"{other}\" not found"))),
        }
        if matches!(req.name.as_str(), "bridge" | "host" | "none") {
            return Err(NetError::Forbidden(format!(
                "{} is a pre-defined network and cannot be created",
                req.name
            )));
        }
        // `.` and `..` cannot be named in a URL path (clients normalise
        // them away), so they stay refused.
        if matches!(req.name.as_str(), "." | "..") {
            return Err(NetError::InvalidParameter(format!(
                "invalid network name {:?}: \".\" and \"..\" are not allowed",
                req.name
            )));
        }
        // Otherwise dockerd's rule; records and bridges are named by ID.
        if req.name.trim().is_empty() {
            return Err(NetError::InvalidParameter(
                "invalid name: name is empty".into(),
            ));
        }
        let parse = |s: &Option<String>, what: &str| -> Result<Option<Cidr>> {
            s.as_deref()
                .filter(|s| !s.is_empty())
                .map(|s| {
                    Cidr::parse(s).map_err(|e| NetError::InvalidParameter(format!("{what}: {e}")))
                })
                .transpose()
        };
        let mut st = self.lock();
        if st.nets.values().any(|n| n.name == req.name) {
            return Err(NetError::Conflict(format!(
                "network with name {} already exists",
                req.name
            )));
        }
        let taken: Vec<Cidr> = st.nets.values().map(|n| n.pool.subnet).collect();
        let subnet = match parse(&req.subnet, "subnet")? {
            Some(s) => {
                if let Some(t) = taken.iter().find(|t| t.overlaps(&s)) {
                    return Err(NetError::Forbidden(format!("invalid pool request: Pool overlaps with other one on this address space ({t})")));
                }
                s
            }
            None => free_subnet("", &taken).ok_or_else(|| NetError::Internal("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network".into()))?,
        };
        let gateway =
            match req.gateway.as_deref().filter(|s| !s.is_empty()) {
                Some(g) => Some(g.parse::<Ipv4Addr>().map_err(|_| {
                    NetError::InvalidParameter(format!("invalid gateway address {g}"))
                })?),
                None => None,
            };
        let range = parse(&req.ip_range, "ip-range")?;
        let mut pool = Pool::new(subnet, gateway, range)
            .map_err(|e| NetError::InvalidParameter(e.to_string()))?;
        for (name, addr) in &req.aux_addresses {
            let ip = addr
                .parse::<Ipv4Addr>()
                .ok()
                .filter(|ip| pool.subnet.contains(*ip));
            let Some(ip) = ip else {
                return Err(NetError::Forbidden(format!(
                    "auxiliary address: ({name}:{addr}) must belong to the master pool: {}",
                    pool.subnet
                )));
            };
            pool.aux.insert(name.clone(), ip);
        }
        let pool6 = if req.ipv6 {
            let taken6: Vec<ipam6::Cidr6> = st
                .nets
                .values()
                .filter_map(|n| n.pool6.as_ref().map(|p| p.subnet))
                .collect();
            let subnet6 = match req.subnet6.as_deref().filter(|s| !s.is_empty()) {
                Some(s) => ipam6::Cidr6::parse(s)
                    .map_err(|e| NetError::InvalidParameter(format!("subnet: {e}")))?,
                None => ipam6::random_ula(),
            };
            if let Some(t) = taken6.iter().find(|t| t.overlaps(&subnet6)) {
                return Err(NetError::Forbidden(format!("invalid pool request: Pool overlaps with other one on this address space ({t})")));
            }
            let gw6 = match req.gateway6.as_deref().filter(|s| !s.is_empty()) {
                Some(g) => Some(g.parse::<std::net::Ipv6Addr>().map_err(|_| {
                    NetError::InvalidParameter(format!("invalid gateway address {g}"))
                })?),
                None => None,
            };
            Some(
                ipam6::Pool6::new(subnet6, gw6)
                    .map_err(|e| NetError::InvalidParameter(e.to_string()))?,
            )
        } else {
            None
        };
        let id = records::random_hex(32);
        let bridge = match req.options.get("com.docker.network.bridge.name") {
            Some(name) => {
                check_bridge_name(name)?;
                if let Some(other) = st.nets.values().find(|n| n.bridge == *name) {
                    return Err(NetError::Conflict(format!(
                        "cannot create network {} ({name}): conflicts with network {} ({}): networks have same bridge name",
                        id, other.id, other.bridge
                    )));
                }
                name.clone()
            }
            None => format!("br-{}", &id[..12]),
        };
        let mtu = req
            .options
            .get("com.docker.network.driver.mtu")
            .and_then(|m| m.parse().ok())
            .unwrap_or(if self.cfg.mtu > 0 {
                self.cfg.mtu
            } else {
                DEFAULT_MTU
            });
        let rec = NetworkRecord {
            id,
            name: req.name,
            created: crate::containers::timefmt::now(),
            bridge,
            pool,
            internal: req.internal,
            attachable: req.attachable,
            labels: req.labels,
            options: req.options,
            predefined: false,
            pool6,
            ipam_options: req.ipam_options,
            mtu,
        };
        self.ensure_bridge(&rec)?;
        if let Err(e) = self.dirs.save_network(&rec) {
            self.remove_bridge(&rec);
            return Err(NetError::internal("saving the network", e));
        }
        st.nets.insert(rec.id.clone(), rec.clone());
        Ok(rec)
    }

    /// All networks as `GET /networks` shows them (predefined host and
    /// none included).
    pub fn list(&self) -> Vec<Value> {
        let st = self.lock();
        let mut out: Vec<Value> = st
            .nets
            .values()
            .map(|n| json::network(n, &st.conts))
            .collect();
        out.push(json::pseudo_network("host", "host"));
        out.push(json::pseudo_network("none", "null"));
        out
    }

    pub fn inspect(&self, reference: &str) -> Result<Value> {
        for (name, driver) in [("host", "host"), ("none", "null")] {
            if reference == name || reference == json::pseudo_id(name) {
                return Ok(json::pseudo_network(name, driver));
            }
        }
        let st = self.lock();
        let n = self.find(&st, reference)?;
        Ok(json::network(&n, &st.conts))
    }

    pub fn remove(&self, reference: &str) -> Result<()> {
        if matches!(reference, "host" | "none" | "bridge") {
            return Err(NetError::Forbidden(format!(
                "{reference} is a pre-defined network and cannot be removed"
            )));
        }
        let mut st = self.lock();
        let n = self.find(&st, reference)?;
        if n.predefined {
            return Err(NetError::Forbidden(format!(
                "{} is a pre-defined network and cannot be removed",
                n.name
            )));
        }
        if st
            .conts
            .values()
            .any(|c| c.endpoints.iter().any(|e| e.network_id == n.id))
        {
            return Err(NetError::Conflict(format!(
                "error while removing network: network {} id {} has active endpoints",
                n.name, n.id
            )));
        }
        self.remove_bridge(&n);
        self.dirs
            .remove_network(&n.id)
            .map_err(internal("removing the network record"))?;
        st.nets.remove(&n.id);
        Ok(())
    }

    /// Remove unused user-defined networks; names of those removed.
    pub fn prune(&self, keep: impl Fn(&NetworkRecord) -> bool) -> Vec<String> {
        let candidates: Vec<NetworkRecord> = {
            let st = self.lock();
            st.nets
                .values()
                .filter(|n| !n.predefined && !keep(n))
                .filter(|n| {
                    !st.conts
                        .values()
                        .any(|c| c.endpoints.iter().any(|e| e.network_id == n.id))
                })
                .cloned()
                .collect()
        };
        candidates
            .into_iter()
            .filter(|n| self.remove(&n.id).is_ok())
            .map(|n| n.name)
            .collect()
    }

    // ---- containers --------------------------------------------------

    /// At create: the network mode names an existing network.
    pub fn check_mode(&self, mode: &str) -> Result<()> {
        if matches!(mode, "host" | "none" | "bridge" | "default") || mode.starts_with("container:")
        {
            return Ok(());
        }
        let st = self.lock();
        self.find(&st, mode).map(|_| ())
    }

    /// At create: `EndpointsConfig` keyed by network name, each naming an
    /// existing network, with an entry for the network mode's network.
    pub fn endpoints_at_create(&self, mode: &str, networking_config: &Value) -> Result<Value> {
        if configured::is_shared_mode(mode) {
            return Ok(networking_config.clone());
        }
        let given: Vec<(String, Value)> = networking_config
            .get("EndpointsConfig")
            .and_then(Value::as_object)
            .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        let st = self.lock();
        let primary = self.find(&st, mode)?;
        let mut out = match networking_config {
            Value::Object(o) => Value::Object(o.clone()),
            _ => Value::Object(serde_json::Map::new()),
        };
        out["EndpointsConfig"] = Value::Object(serde_json::Map::new());
        let mut has_primary = false;
        for (key, epc) in given {
            if matches!(key.as_str(), "host" | "none") {
                return Err(NetError::InvalidParameter(format!(
                    "container cannot be connected to network {key} and {} at once",
                    primary.name
                )));
            }
            // The CLI names the default network `default`.
            let key = if key == "default" { "bridge" } else { &key };
            let net = self.find(&st, key)?;
            let req = configured::EndpointRequest::parse(&epc)?;
            req.check_network(net.predefined)?;
            has_primary |= net.id == primary.id;
            out = configured::with_endpoint(&out, &net.name, Some(epc));
        }
        if !has_primary {
            out = configured::with_endpoint(&out, &primary.name, Some(Value::Null));
        }
        Ok(out)
    }

    /// A network as connect/disconnect name it: (ID, name, predefined).
    /// `host` and `none` are there too (with their pseudo IDs).
    pub fn resolve(&self, reference: &str) -> Result<(String, String, bool)> {
        for name in ["host", "none"] {
            if reference == name || reference == json::pseudo_id(name) {
                return Ok((json::pseudo_id(name), name.to_string(), true));
            }
        }
        let st = self.lock();
        let n = self.find(&st, reference)?;
        Ok((n.id, n.name, n.predefined))
    }

    /// Before the spec is written: addresses, published ports, hosts and
    /// resolv.conf. On error nothing is left reserved.
    pub fn prepare(self: &Arc<Self>, rec: &ContainerRecord, container_dir: &Path) -> Result<()> {
        let started = std::time::Instant::now();
        let _t = scopeguard_log("prepare", &rec.id, started);
        self.release(&rec.id);
        let mode = rec.host_config.network_mode();
        if configured::is_shared_mode(mode) {
            return Ok(());
        }
        let result = self.prepare_endpoints(rec, container_dir);
        if result.is_err() {
            self.release(&rec.id);
        }
        result
    }

    fn prepare_endpoints(
        self: &Arc<Self>,
        rec: &ContainerRecord,
        container_dir: &Path,
    ) -> Result<()> {
        let mut wanted = Vec::new();
        for (i, (name, epc)) in configured::configured(rec).into_iter().enumerate() {
            let mut req = configured::EndpointRequest::parse(&epc)?;
            // `--mac-address`: per endpoint since API 1.44, in Config before.
            if i == 0 && req.mac.is_none() {
                if let Some(m) = rec.config.mac_address.as_deref().filter(|m| !m.is_empty()) {
                    req.mac = Some(records::parse_mac(m).map(records::mac_string).ok_or_else(
                        || NetError::InvalidParameter(format!("invalid MAC address: {m}")),
                    )?);
                }
            }
            wanted.push((name, epc, req));
        }
        let name = rec.name.trim_start_matches('/').to_string();
        let hostname = crate::containers::spec::hostname(rec);
        let mut eps: Vec<(NetworkRecord, Endpoint)> = Vec::new();
        {
            let mut st = self.lock();
            // Registered first, so that release() gives back whatever is
            // allocated below if a later network fails.
            st.conts.insert(
                rec.id.clone(),
                ContainerNet {
                    id: rec.id.clone(),
                    name: name.clone(),
                    hostname: hostname.clone(),
                    ..Default::default()
                },
            );
            for (i, (net_ref, epc, req)) in wanted.into_iter().enumerate() {
                let net = self.find(&st, &net_ref)?;
                req.check_network(net.predefined)?;
                let ifname = format!("eth{i}");
                let ep = self.allocate(&mut st, &net, &rec.id, &req, epc, &ifname)?;
                if let Some(cn) = st.conts.get_mut(&rec.id) {
                    cn.endpoints.push(ep.clone());
                }
                eps.push((net, ep));
            }
        }
        let Some((net, ep)) = eps.first().cloned() else {
            // Disconnected from every network: loopback only.
            return Ok(());
        };
        let user_net = eps.iter().any(|(n, _)| !n.predefined);
        // Ports: all bound before anything starts, so a conflict starts nothing.
        let reqs = ports::requests(
            rec.host_config.port_bindings.as_ref(),
            rec.host_config.publish_all_ports,
            rec.config.exposed_ports.as_ref(),
        )
        .map_err(NetError::InvalidParameter)?;
        let published = self.publish(&rec.id, &name, &net, &ep, &reqs)?;
        let upstream = self.write_host_files(container_dir, &hostname, ep.ip, user_net)?;
        let mut st = self.lock();
        if let Some(cn) = st.conts.get_mut(&rec.id) {
            cn.ports = published;
            cn.upstream_dns = upstream;
            self.dirs
                .save_container(cn)
                .map_err(internal("saving the container's endpoints"))?;
        }
        Ok(())
    }

    /// Bind `reqs` on the host (all or none), forward them to `ep` and
    /// start their proxies; returns what is published.
    fn publish(
        &self,
        id: &str,
        name: &str,
        net: &NetworkRecord,
        ep: &Endpoint,
        reqs: &[ports::PortRequest],
    ) -> Result<Vec<ports::Published>> {
        let programming = |m: String| {
            NetError::Internal(format!(
                "driver failed programming external connectivity on endpoint {name} ({}): {m}",
                ep.endpoint_id
            ))
        };
        let mut bound: Vec<(ports::Published, proxy::Bound)> = Vec::new();
        for r in reqs {
            // `::` takes the port its 0.0.0.0 twin, the binding just before
            // it, got: dockerd uses one host port for both families.
            let r = match bound.last() {
                Some((p, _)) if r.is_v6_twin_of(p) => ports::PortRequest {
                    host_ports: (p.host_port, p.host_port),
                    ..r.clone()
                },
                _ => r.clone(),
            };
            bound.push(proxy::bind(&r, self.fwd.userland_proxy()).map_err(programming)?);
        }
        if !bound.is_empty() {
            let ports: Vec<ports::Published> = bound.iter().map(|(p, _)| p.clone()).collect();
            if let Some(cn) = self.lock().conts.get_mut(id) {
                // Before the rules go in, so that release() removes them.
                cn.ports = ports.clone();
            }
            let maps: Vec<Mapping> = ports
                .iter()
                .map(|p| Mapping {
                    container: id,
                    bridge: &net.bridge,
                    container_ip: ep.ip,
                    port: p,
                })
                .collect();
            self.fwd.add(&maps).map_err(programming)?;
        }
        let mut handles = Vec::new();
        let mut published = Vec::new();
        for (p, b) in bound {
            let h = proxy::spawn(b, SocketAddrV4::new(ep.ip, p.container_port))
                .map_err(|e| NetError::internal("starting the port proxy", e))?;
            handles.push(h);
            published.push(p);
        }
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id.to_string())
            .or_default()
            .extend(handles);
        Ok(published)
    }

    /// The endpoint that carried a running container's published ports is
    /// gone: they move to its new first endpoint (as dockerd moves them
    /// with the gateway), keeping their host ports, or close.
    fn move_ports(&self, id: &str) {
        let (name, ports, next) = {
            let st = self.lock();
            let Some(cn) = st.conts.get(id) else { return };
            let next = cn
                .endpoints
                .first()
                .and_then(|ep| st.nets.get(&ep.network_id).map(|n| (n.clone(), ep.clone())));
            (cn.name.clone(), cn.ports.clone(), next)
        };
        if ports.is_empty() {
            return;
        }
        if let Some(tasks) = self
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
        {
            tasks.into_iter().for_each(proxy::Proxy::close);
        }
        if let Err(e) = self.fwd.remove(id) {
            tracing::error!(%id, error = %e, "removing the published-port rules");
        }
        let reqs: Vec<ports::PortRequest> = ports
            .iter()
            .map(|p| ports::PortRequest {
                proto: p.proto,
                container_port: p.container_port,
                host_ip: p.host_ip,
                host_ports: (p.host_port, p.host_port),
            })
            .collect();
        let moved = match &next {
            Some((net, ep)) => match self.publish(id, &name, net, ep, &reqs) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(%id, error = %e, "moving the published ports");
                    if let Some(tasks) = self
                        .tasks
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(id)
                    {
                        tasks.into_iter().for_each(proxy::Proxy::close);
                    }
                    let _ = self.fwd.remove(id);
                    Vec::new()
                }
            },
            None => Vec::new(),
        };
        let mut st = self.lock();
        if let Some(cn) = st.conts.get_mut(id) {
            cn.ports = moved;
            if let Err(e) = self.dirs.save_container(cn) {
                tracing::error!(%id, error = %e, "saving the container's endpoints");
            }
        }
    }

    /// Reserve an address on `net` for `owner` and describe the endpoint.
    fn allocate(
        &self,
        st: &mut State,
        net: &NetworkRecord,
        owner: &str,
        req: &configured::EndpointRequest,
        config: Value,
        ifname: &str,
    ) -> Result<Endpoint> {
        let pool_net = st
            .nets
            .get_mut(&net.id)
            .ok_or_else(|| NetError::NotFound(format!("network {} not found", net.name)))?;
        let ip = pool_net.pool.allocate(owner, req.ip).map_err(|e| match e {
            ipam::IpamError::InUse => NetError::InvalidParameter("Address already in use".into()),
            other => NetError::InvalidParameter(other.to_string()),
        })?;
        let ip6 = match pool_net.pool6.as_mut() {
            Some(p6) => match p6.allocate(owner, req.ip6) {
                Ok(a) => Some(a),
                Err(e) => {
                    pool_net.pool.release(ip, owner);
                    return Err(match e {
                        ipam::IpamError::InUse => {
                            NetError::InvalidParameter("Address already in use".into())
                        }
                        other => NetError::InvalidParameter(other.to_string()),
                    });
                }
            },
            None => None,
        };
        if let Err(e) = self.dirs.save_network(pool_net) {
            pool_net.pool.release(ip, owner);
            if let (Some(p6), Some(a)) = (pool_net.pool6.as_mut(), ip6) {
                p6.release(a, owner);
            }
            return Err(NetError::internal("saving the address pool", e));
        }
        Ok(Endpoint {
            network_id: net.id.clone(),
            endpoint_id: records::random_hex(32),
            ip,
            mac: req
                .mac
                .clone()
                .unwrap_or_else(|| records::mac_string(records::mac_for(ip))),
            aliases: req.aliases.clone(),
            requested_ip: req.ip,
            ip6,
            host_veth: format!("veth{}", &records::random_hex(4)[..7]),
            ifname: ifname.to_string(),
            config,
        })
    }

    /// /etc/hosts gets the container's address; on user-defined networks
    /// /etc/resolv.conf points at the embedded DNS. Returns the resolvers
    /// the embedded DNS forwards to.
    fn write_host_files(
        &self,
        dir: &Path,
        hostname: &str,
        ip: Ipv4Addr,
        embedded_dns: bool,
    ) -> Result<Vec<String>> {
        let hosts_path = dir.join("hosts");
        let hosts = std::fs::read_to_string(&hosts_path).unwrap_or_default();
        let hosts = json::hosts_with_address(&hosts, hostname, ip);
        berth_common::atomic::write_file_mode(&hosts_path, hosts.as_bytes(), 0o644)
            .map_err(internal("writing /etc/hosts"))?;
        if !embedded_dns {
            return Ok(Vec::new());
        }
        let resolv_path = dir.join("resolv.conf");
        let resolv = std::fs::read_to_string(&resolv_path).unwrap_or_default();
        let (content, upstream) = json::resolv_for_embedded_dns(&resolv);
        berth_common::atomic::write_file_mode(&resolv_path, content.as_bytes(), 0o644)
            .map_err(internal("writing /etc/resolv.conf"))?;
        Ok(upstream)
    }

    /// The runtime has created the container (init `pid`) and brought up
    /// the loopback of its namespace (as runc does): plug its endpoints in,
    /// start the embedded DNS.
    pub fn attach(self: &Arc<Self>, rec: &ContainerRecord, pid: i32) -> Result<()> {
        let _t = scopeguard_log("attach", &rec.id, std::time::Instant::now());
        let mode = rec.host_config.network_mode();
        if mode == "host" || mode.starts_with("container:") {
            return Ok(());
        }
        // Without endpoints (`none`) there is nothing to do.
        let Some(cn) = self
            .lock()
            .conts
            .get(&rec.id)
            .filter(|cn| !cn.endpoints.is_empty())
            .cloned()
        else {
            return Ok(());
        };
        let ns = netns::open(pid).map_err(|e| {
            NetError::internal(format!("opening the network namespace of pid {pid}"), e)
        })?;
        for (i, ep) in cn.endpoints.iter().enumerate() {
            self.plug(ep, &ns, i == 0)?;
        }
        self.start_dns(&cn, &ns)?;
        for ep in &cn.endpoints {
            self.endpoint_event("connect", &ep.network_id, &rec.id);
        }
        Ok(())
    }

    /// dockerd's `network connect`/`disconnect` event: the network is the
    /// actor, the container an attribute.
    fn endpoint_event(&self, action: &str, network_id: &str, container: &str) {
        let Some(name) = self.lock().nets.get(network_id).map(|n| n.name.clone()) else {
            return;
        };
        self.events.publish(
            crate::events::Event::new(crate::events::EventType::Network, action, network_id)
                .attr("container", container)
                .attr("name", name)
                .attr("type", "bridge"),
        );
    }

    fn start_dns(self: &Arc<Self>, cn: &ContainerNet, ns: &std::fs::File) -> Result<()> {
        let user_net = {
            let st = self.lock();
            cn.endpoints
                .iter()
                .any(|e| st.nets.get(&e.network_id).is_some_and(|n| !n.predefined))
        };
        if !user_net {
            return Ok(());
        }
        let mut running = self.dns.lock().unwrap_or_else(|p| p.into_inner());
        if running.contains_key(&cn.id) {
            return Ok(());
        }
        let sock = dns::bind_in(ns)
            .map_err(|e| NetError::internal("starting the embedded DNS server", e))?;
        let lookup: Arc<dyn dns::Lookup> = self.clone();
        let h = dns::serve(sock, cn.id.clone(), lookup)
            .map_err(|e| NetError::internal("starting the embedded DNS server", e))?;
        running.insert(cn.id.clone(), h);
        Ok(())
    }

    /// One veth pair: host end on the bridge, the other end configured
    /// inside the container's namespace.
    fn plug(&self, ep: &Endpoint, ns: &std::fs::File, default_route: bool) -> Result<()> {
        use std::os::fd::AsRawFd;
        let net = self
            .lock()
            .nets
            .get(&ep.network_id)
            .cloned()
            .ok_or_else(|| NetError::NotFound(format!("network {} not found", ep.network_id)))?;
        self.ensure_bridge(&net)?;
        let mut nl =
            netlink::Netlink::open().map_err(|e| NetError::internal("opening netlink", e))?;
        let mac = records::parse_mac(&ep.mac).unwrap_or_else(|| records::mac_for(ep.ip));
        nl.add_veth(&ep.host_veth, &ep.ifname, mac, ns.as_raw_fd(), net.mtu)
            .map_err(|e| NetError::internal(format!("creating veth pair {}", ep.host_veth), e))?;
        let mut setup = || -> std::io::Result<()> {
            let host = netlink::link_index(&ep.host_veth)?
                .ok_or_else(|| std::io::Error::other("host end vanished"))?;
            let br = netlink::link_index(&net.bridge)?
                .ok_or_else(|| std::io::Error::other(format!("bridge {} vanished", net.bridge)))?;
            nl.set_master_up(host, br)?;
            if self.fwd.active() && !self.fwd.userland_proxy() {
                // Kernel hairpin: a container reaching its own published port.
                std::fs::write(
                    format!("/sys/class/net/{}/brport/hairpin_mode", ep.host_veth),
                    "1",
                )?;
            }
            let (ifname, ip, prefix, gw) = (
                ep.ifname.clone(),
                ep.ip,
                net.pool.subnet.prefix,
                net.pool.gateway,
            );
            let v6 = ep
                .ip6
                .zip(net.pool6.as_ref())
                .map(|(a, p)| (a, p.subnet.prefix, p.gateway));
            netns::run_in(ns, move || {
                let mut nl = netlink::Netlink::open()?;
                let idx = netlink::link_index(&ifname)?.ok_or_else(|| {
                    std::io::Error::other(format!("{ifname} missing in the container"))
                })?;
                ignore_exists(nl.add_addr(idx, ip, prefix))?;
                if let Some((a6, p6, _)) = v6 {
                    // This thread is in the container's namespace: these
                    // are its sysctls.
                    let _ = std::fs::write(
                        format!("/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6"),
                        "0",
                    );
                    ignore_exists(nl.add_ip(idx, a6.into(), p6))?;
                }
                nl.set_up(idx)?;
                if default_route {
                    ignore_exists(nl.add_default_route(idx, gw))?;
                    if let Some((_, _, g6)) = v6 {
                        ignore_exists(nl.add_default_route_ip(idx, g6.into()))?;
                    }
                }
                Ok(())
            })
        };
        if let Err(e) = setup() {
            delete_link(&ep.host_veth);
            return Err(NetError::internal(
                format!("configuring {} on network {}", ep.ifname, net.name),
                e,
            ));
        }
        Ok(())
    }

    /// The container stopped or is going away: close its ports, stop its
    /// DNS, remove its veths and give its addresses back.
    pub fn release(&self, id: &str) {
        self.release_with(id, true)
    }

    /// `forwarding` false: the published-port rules are already gone.
    fn release_with(&self, id: &str, forwarding: bool) {
        let _t = scopeguard_log("release", id, std::time::Instant::now());
        if let Some(tasks) = self
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
        {
            for t in tasks {
                t.close();
            }
        }
        if let Some(t) = self
            .dns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
        {
            t.abort();
        }
        let mut st = self.lock();
        let Some(cn) = st.conts.remove(id) else {
            return;
        };
        // Deleting a link waits for an RCU grace period (~20 ms), which
        // `docker run --rm` would wait for; the container is gone, so its
        // veths go in the background (the kernel drops them with the
        // namespace anyway).
        let veths: Vec<String> = cn.endpoints.iter().map(|e| e.host_veth.clone()).collect();
        let spawned = std::thread::Builder::new()
            .name("berthd-veth-gc".into())
            .spawn({
                let veths = veths.clone();
                move || veths.iter().for_each(|v| delete_link(v))
            });
        if spawned.is_err() {
            veths.iter().for_each(|v| delete_link(v));
        }
        for ep in &cn.endpoints {
            if let Some(n) = st.nets.get_mut(&ep.network_id) {
                n.pool.release_owner(id);
                if let Some(p6) = n.pool6.as_mut() {
                    p6.release_owner(id);
                }
                if let Err(e) = self.dirs.save_network(n) {
                    tracing::error!(network = %n.name, error = %e, "saving the address pool");
                }
            }
        }
        if let Err(e) = self.dirs.remove_container(id) {
            tracing::error!(%id, error = %e, "removing the endpoint record");
        }
        drop(st);
        for ep in &cn.endpoints {
            self.endpoint_event("disconnect", &ep.network_id, id);
        }
        if forwarding && !cn.ports.is_empty() {
            if let Err(e) = self.fwd.remove(id) {
                tracing::error!(%id, error = %e, "removing the published-port rules");
            }
        }
    }

    /// The kernel forwarding of a container's published ports (to its
    /// first endpoint, as the proxy does).
    fn mappings<'a>(&self, st: &'a State, cn: &'a ContainerNet) -> Vec<Mapping<'a>> {
        let Some(ep) = cn.endpoints.first() else {
            return Vec::new();
        };
        let Some(net) = st.nets.get(&ep.network_id) else {
            return Vec::new();
        };
        cn.ports
            .iter()
            .map(|p| Mapping {
                container: &cn.id,
                bridge: &net.bridge,
                container_ip: ep.ip,
                port: p,
            })
            .collect()
    }

    /// After a daemon restart: running containers get their ports and DNS
    /// back; endpoints of containers that are gone are released.
    pub fn restore(self: &Arc<Self>, live: &[(String, i32)]) {
        let conts: Vec<ContainerNet> = self.lock().conts.values().cloned().collect();
        {
            let st = self.lock();
            let maps: Vec<Mapping> = conts
                .iter()
                .filter(|cn| live.iter().any(|(id, _)| *id == cn.id))
                .flat_map(|cn| self.mappings(&st, cn))
                .collect();
            if let Err(e) = self.fwd.start(&maps) {
                tracing::error!(error = %e, "setting up the published-port rules: berthd serves published ports itself");
            }
        }
        for cn in conts {
            let Some((_, pid)) = live.iter().find(|(id, _)| *id == cn.id) else {
                // fwd.start() above dropped its rules.
                self.release_with(&cn.id, false);
                continue;
            };
            let mut handles = Vec::new();
            if let Some(ep) = cn.endpoints.first() {
                for p in &cn.ports {
                    let req = ports::PortRequest {
                        proto: p.proto,
                        container_port: p.container_port,
                        host_ip: p.host_ip,
                        host_ports: (p.host_port, p.host_port),
                    };
                    match proxy::bind(&req, self.fwd.userland_proxy()).and_then(|(_, b)| {
                        proxy::spawn(b, SocketAddrV4::new(ep.ip, p.container_port))
                            .map_err(|e| e.to_string())
                    }) {
                        Ok(h) => handles.push(h),
                        Err(e) => {
                            tracing::error!(id = %cn.id, error = %e, "restoring a published port")
                        }
                    }
                }
            }
            self.tasks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(cn.id.clone())
                .or_default()
                .extend(handles);
            match netns::open(*pid) {
                Ok(ns) => {
                    if let Err(e) = self.start_dns(&cn, &ns) {
                        tracing::error!(id = %cn.id, error = %e, "restoring the embedded DNS");
                    }
                }
                Err(e) => {
                    tracing::error!(id = %cn.id, error = %e, "opening the container's network namespace")
                }
            }
        }
        // Addresses held by containers without an endpoint record.
        let mut st = self.lock();
        let owners: Vec<String> = st.conts.keys().cloned().collect();
        for n in st.nets.values_mut() {
            let before = n.pool.allocated.len() + n.pool6.as_ref().map_or(0, |p| p.allocated.len());
            n.pool.allocated.retain(|_, o| owners.contains(o));
            if let Some(p6) = n.pool6.as_mut() {
                p6.allocated.retain(|_, o| owners.contains(o));
            }
            if n.pool.allocated.len() + n.pool6.as_ref().map_or(0, |p| p.allocated.len()) != before
            {
                let _ = self.dirs.save_network(n);
            }
        }
    }

    /// `docker network connect` on a running container (init `pid`):
    /// a new interface, named after the container's others. On failure
    /// nothing is left attached or reserved.
    pub fn connect(
        self: &Arc<Self>,
        net_ref: &str,
        rec: &ContainerRecord,
        pid: i32,
        epc: &Value,
    ) -> Result<()> {
        let req = configured::EndpointRequest::parse(epc)?;
        let ns = netns::open(pid)
            .map_err(|e| NetError::internal("opening the container's network namespace", e))?;
        let (net, ep, cn) = {
            let mut st = self.lock();
            let net = self.find(&st, net_ref)?;
            req.check_network(net.predefined)?;
            let existing = st
                .conts
                .get(&rec.id)
                .cloned()
                .unwrap_or_else(|| ContainerNet {
                    id: rec.id.clone(),
                    name: rec.name.trim_start_matches('/').to_string(),
                    hostname: crate::containers::spec::hostname(rec),
                    ..Default::default()
                });
            if existing.endpoints.iter().any(|e| e.network_id == net.id) {
                return Err(NetError::Forbidden(format!(
                    "endpoint with name {} already exists in network {}",
                    existing.name, net.name
                )));
            }
            let ifname = (0..)
                .map(|i| format!("eth{i}"))
                .find(|n| !existing.endpoints.iter().any(|e| &e.ifname == n))
                .unwrap_or_default();
            let ep = self.allocate(&mut st, &net, &rec.id, &req, epc.clone(), &ifname)?;
            let mut cn = existing;
            cn.endpoints.push(ep.clone());
            st.conts.insert(rec.id.clone(), cn.clone());
            (net, ep, cn)
        };
        // The default route stays where it is; a container without one
        // (all its networks were disconnected) gets it through this one.
        let result = self.plug(&ep, &ns, !net.internal).and_then(|()| {
            if net.predefined {
                Ok(())
            } else {
                self.start_dns(&cn, &ns)
            }
        });
        let mut st = self.lock();
        let saved = match result {
            Ok(()) => match st.conts.get(&rec.id) {
                Some(cn) => self
                    .dirs
                    .save_container(cn)
                    .map_err(internal("saving the container's endpoints")),
                None => Ok(()),
            },
            Err(e) => Err(e),
        };
        if let Err(e) = saved {
            delete_link(&ep.host_veth);
            drop_endpoint(&mut st, &rec.id, &net.id);
            if let Some(n) = st.nets.get_mut(&net.id) {
                n.pool.release(ep.ip, &rec.id);
                if let (Some(p6), Some(a)) = (n.pool6.as_mut(), ep.ip6) {
                    p6.release(a, &rec.id);
                }
                let _ = self.dirs.save_network(n);
            }
            return Err(e);
        }
        drop(st);
        self.endpoint_event("connect", &net.id, &rec.id);
        if cn.endpoints.len() == 1 && cn.ports.is_empty() {
            // The container had no network: its ports come with this one.
            let reqs = ports::requests(
                rec.host_config.port_bindings.as_ref(),
                rec.host_config.publish_all_ports,
                rec.config.exposed_ports.as_ref(),
            )
            .unwrap_or_default();
            if !reqs.is_empty() {
                let published = match self.publish(&rec.id, &cn.name, &net, &ep, &reqs) {
                    Ok(p) => p,
                    Err(e) => {
                        // Nothing stays attached: the ports half-opened
                        // go with the endpoint.
                        if let Some(c) = self.lock().conts.get_mut(&rec.id) {
                            c.ports.clear();
                        }
                        if let Some(tasks) = self
                            .tasks
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&rec.id)
                        {
                            tasks.into_iter().for_each(proxy::Proxy::close);
                        }
                        let _ = self.fwd.remove(&rec.id);
                        let _ = self.disconnect(&net.id, &rec.id, pid);
                        return Err(e);
                    }
                };
                let mut st = self.lock();
                if let Some(c) = st.conts.get_mut(&rec.id) {
                    c.ports = published;
                    self.dirs
                        .save_container(c)
                        .map_err(internal("saving the container's endpoints"))?;
                }
            }
        }
        Ok(())
    }

    /// `docker network disconnect` of a running container (init `pid`):
    /// false when it has no endpoint on that network. When the interface
    /// with the default route goes, the next one gets it, as in dockerd.
    pub fn disconnect(&self, net_ref: &str, container_id: &str, pid: i32) -> Result<bool> {
        let mut st = self.lock();
        let net = self.find(&st, net_ref)?;
        let Some(ep) = st
            .conts
            .get(container_id)
            .and_then(|c| c.endpoints.iter().find(|e| e.network_id == net.id).cloned())
        else {
            return Ok(false);
        };
        let carried_ports = st
            .conts
            .get(container_id)
            .and_then(|c| c.endpoints.first())
            .is_some_and(|e| e.network_id == net.id);
        delete_link(&ep.host_veth);
        drop_endpoint(&mut st, container_id, &net.id);
        if let Some(n) = st.nets.get_mut(&net.id) {
            n.pool.release(ep.ip, container_id);
            if let (Some(p6), Some(a)) = (n.pool6.as_mut(), ep.ip6) {
                p6.release(a, container_id);
            }
            let _ = self.dirs.save_network(n);
        }
        let next = st.conts.get(container_id).and_then(|cn| {
            let ep = cn.endpoints.first()?;
            let n = st.nets.get(&ep.network_id)?;
            (!n.internal).then(|| (ep.ifname.clone(), n.pool.gateway))
        });
        if let Some(cn) = st.conts.get(container_id) {
            self.dirs
                .save_container(cn)
                .map_err(internal("saving the container's endpoints"))?;
        }
        drop(st);
        self.endpoint_event("disconnect", &net.id, container_id);
        if carried_ports {
            self.move_ports(container_id);
        }
        if let Some((ifname, gw)) = next {
            let route = netns::open(pid).and_then(|ns| {
                netns::run_in(&ns, move || {
                    let mut nl = netlink::Netlink::open()?;
                    match netlink::link_index(&ifname)? {
                        Some(idx) => ignore_exists(nl.add_default_route(idx, gw)),
                        None => Ok(()),
                    }
                })
            });
            if let Err(e) = route {
                tracing::warn!(id = %container_id, error = %e, "moving the default route");
            }
        }
        Ok(true)
    }

    /// A running container's address on the default bridge (legacy links).
    pub fn default_bridge_ip(&self, container_id: &str) -> Option<Ipv4Addr> {
        let st = self.lock();
        st.conts.get(container_id)?.endpoints.iter().find_map(|e| {
            st.nets
                .get(&e.network_id)
                .filter(|n| n.predefined)
                .map(|_| e.ip)
        })
    }

    /// inspect's `NetworkSettings`.
    pub fn settings(&self, rec: &ContainerRecord) -> Value {
        let st = self.lock();
        json::settings(rec, st.conts.get(&rec.id), &st.nets)
    }

    /// `ContainerSummary.Ports` and `NetworkSettings.Networks`.
    pub fn summary(&self, rec: &ContainerRecord) -> (Value, Value) {
        let st = self.lock();
        let cn = st.conts.get(&rec.id);
        let s = json::settings(rec, cn, &st.nets);
        (
            json::summary_ports(rec, cn),
            s.get("Networks").cloned().unwrap_or(Value::Null),
        )
    }
}

/// A name the kernel takes for an interface: 1 to 15 bytes, no `/`, no
/// white space, no `:` (alias syntax), not `.` or `..`.
fn check_bridge_name(name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name.len() > 15
        || name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
    if bad {
        return Err(NetError::InvalidParameter(format!(
            "invalid bridge name {name:?}: an interface name has 1 to 15 characters, without '/', ':' or white space"
        )));
    }
    Ok(())
}

/// A Linux bridge (never delete or configure anything else by that name).
fn is_bridge(name: &str) -> bool {
    !name.contains('/')
        && Path::new("/sys/class/net")
            .join(name)
            .join("bridge")
            .is_dir()
}

/// Logs how long a network step of a container took when dropped.
struct StepTimer<'a> {
    step: &'static str,
    id: &'a str,
    started: std::time::Instant,
}

impl Drop for StepTimer<'_> {
    fn drop(&mut self) {
        let ms = self.started.elapsed().as_secs_f64() * 1000.0;
        tracing::debug!(step = self.step, id = self.id, ms, "network step");
    }
}

fn scopeguard_log<'a>(
    step: &'static str,
    id: &'a str,
    started: std::time::Instant,
) -> StepTimer<'a> {
    StepTimer { step, id, started }
}

fn drop_endpoint(st: &mut State, container: &str, network: &str) {
    if let Some(c) = st.conts.get_mut(container) {
        c.endpoints.retain(|e| e.network_id != network);
    }
}

fn delete_link(name: &str) {
    if let Ok(Some(idx)) = netlink::link_index(name) {
        if let Err(e) = netlink::Netlink::open().and_then(|mut nl| nl.del_link(idx)) {
            if e.raw_os_error() != Some(libc::ENODEV) {
                tracing::warn!(link = name, error = %e, "deleting a veth");
            }
        }
    }
}

impl dns::Lookup for Networks {
    fn lookup(&self, container: &str, name: &str) -> Option<Vec<std::net::IpAddr>> {
        let st = self.lock();
        let me = st.conts.get(container)?;
        let my_nets: Vec<&String> = me
            .endpoints
            .iter()
            .map(|e| &e.network_id)
            .filter(|id| st.nets.get(*id).is_some_and(|n| !n.predefined))
            .collect();
        // Links of this container's endpoints (`name:alias`, user networks).
        for ep in &me.endpoints {
            let links = ep.config.get("Links").and_then(Value::as_array);
            for l in links.into_iter().flatten().filter_map(Value::as_str) {
                let (target, alias) = l.split_once(':').unwrap_or((l, l));
                let alias = alias.rsplit('/').next().unwrap_or_default();
                if alias.is_empty() || !alias.eq_ignore_ascii_case(name) {
                    continue;
                }
                let target = target.trim_start_matches('/');
                let ip = st.conts.values().find_map(|c| {
                    (c.name == target || c.id.starts_with(target))
                        .then(|| c.endpoints.iter().find(|e| e.network_id == ep.network_id))
                        .flatten()
                        .map(|e| e.addrs())
                });
                if let Some(ip) = ip {
                    return Some(ip);
                }
            }
        }
        let mut found = None;
        for c in st.conts.values() {
            for ep in c
                .endpoints
                .iter()
                .filter(|e| my_nets.contains(&&e.network_id))
            {
                let net_name = st
                    .nets
                    .get(&ep.network_id)
                    .map(|n| n.name.as_str())
                    .unwrap_or("");
                let names = [
                    c.name.as_str(),
                    &c.id[..12.min(c.id.len())],
                    c.hostname.as_str(),
                ];
                let hit = names
                    .iter()
                    .chain(
                        ep.aliases
                            .iter()
                            .map(String::as_str)
                            .collect::<Vec<_>>()
                            .iter(),
                    )
                    .any(|n| {
                        let n = n.to_ascii_lowercase();
                        !n.is_empty() && (name == n || name == format!("{n}.{net_name}"))
                    });
                if hit {
                    found.get_or_insert_with(Vec::new).extend(ep.addrs());
                }
            }
        }
        found
    }

    fn upstreams(&self, container: &str) -> Vec<SocketAddr> {
        let configured: Vec<SocketAddr> = self
            .lock()
            .conts
            .get(container)
            .map(|c| {
                c.upstream_dns
                    .iter()
                    .filter_map(|s| s.parse::<std::net::IpAddr>().ok())
                    .map(|ip| SocketAddr::new(ip, 53))
                    .collect()
            })
            .unwrap_or_default();
        if !configured.is_empty() {
            return configured;
        }
        dns::nameservers(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_table_parses() {
        // Whatever the host has, parsing must not invent a default route.
        assert!(host_routes()
            .iter()
            .all(|(c, _)| c.prefix > 0 || c.addr != Ipv4Addr::UNSPECIFIED));
    }

    #[test]
    fn free_subnet_avoids_taken_ones() {
        let first = free_subnet("", &[]).unwrap();
        let second = free_subnet("", &[first]).unwrap();
        assert!(!first.overlaps(&second));
    }
}
