//! The embedded DNS server containers on user-defined networks use, as
//! dockerd's 127.0.0.11. Instead of dockerd's iptables redirect, berthd
//! binds a UDP socket on 127.0.0.11:53 *inside* the container's network
//! namespace (from a short-lived thread that setns'd there) and serves it
//! from its own tokio runtime. Names of containers on the same networks
//! are answered here; everything else is forwarded, from the host's
//! namespace, to the container's configured or the host's resolvers.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::AbortHandle;

pub const DNS_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);
const FORWARD_TIMEOUT: Duration = Duration::from_secs(3);
const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;

/// Answers names for one container (the one whose namespace the socket is in).
pub trait Lookup: Send + Sync + 'static {
    /// `Some(addresses)` when `name` is a container/alias this container can
    /// see (IPv4 and IPv6 addresses, possibly none); `None` to forward.
    fn lookup(&self, container: &str, name: &str) -> Option<Vec<IpAddr>>;
    /// Upstream resolvers for this container.
    fn upstreams(&self, container: &str) -> Vec<SocketAddr>;
}

/// The question of a query: (lower-case name without trailing dot, type,
/// class, end offset of the question section).
pub fn parse_question(msg: &[u8]) -> Option<(String, u16, u16, usize)> {
    if msg.len() < 12 || u16::from_be_bytes([msg[4], msg[5]]) != 1 {
        return None;
    }
    let mut off = 12;
    let mut labels = Vec::new();
    loop {
        let len = *msg.get(off)? as usize;
        off += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        let label = msg.get(off..off + len)?;
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        off += len;
    }
    let qtype = u16::from_be_bytes([*msg.get(off)?, *msg.get(off + 1)?]);
    let qclass = u16::from_be_bytes([*msg.get(off + 2)?, *msg.get(off + 3)?]);
    Some((labels.join("."), qtype, qclass, off + 4))
}

/// An authoritative answer to `query`: the IPv4 addresses for an A query,
/// the IPv6 ones for AAAA; other types get an empty NOERROR answer.
pub fn answer(query: &[u8], qtype: u16, question_end: usize, addrs: &[IpAddr]) -> Vec<u8> {
    let records: Vec<Vec<u8>> = addrs
        .iter()
        .filter_map(|a| match (a, qtype) {
            (IpAddr::V4(v), TYPE_A) => Some(v.octets().to_vec()),
            (IpAddr::V6(v), TYPE_AAAA) => Some(v.octets().to_vec()),
            _ => None,
        })
        .collect();
    let mut r = Vec::with_capacity(question_end + records.len() * 16);
    r.extend_from_slice(&query[0..2]);
    // QR, opcode from the query, AA, RD copied, RA.
    let rd = query[2] & 0x01;
    r.push(0x84 | rd | (query[2] & 0x78));
    r.push(0x80);
    r.extend_from_slice(&1u16.to_be_bytes());
    r.extend_from_slice(&(records.len() as u16).to_be_bytes());
    r.extend_from_slice(&[0, 0, 0, 0]);
    r.extend_from_slice(&query[12..question_end]);
    for ip in &records {
        r.extend_from_slice(&[0xc0, 0x0c]); // the name in the question
        r.extend_from_slice(&qtype.to_be_bytes());
        r.extend_from_slice(&CLASS_IN.to_be_bytes());
        r.extend_from_slice(&600u32.to_be_bytes());
        r.extend_from_slice(&(ip.len() as u16).to_be_bytes());
        r.extend_from_slice(ip);
    }
    r
}

/// SERVFAIL for a query nobody could answer.
fn servfail(query: &[u8], question_end: usize) -> Vec<u8> {
    let mut r = answer(query, 0, question_end, &[]);
    r[2] &= !0x04;
    r[3] = 0x82;
    r
}

/// Bind 127.0.0.11:53 in the namespace `ns` (loopback must be up there).
pub fn bind_in(ns: &std::fs::File) -> std::io::Result<std::net::UdpSocket> {
    super::netns::run_in(ns, || {
        let s = std::net::UdpSocket::bind(SocketAddrV4::new(DNS_IP, 53))?;
        s.set_nonblocking(true)?;
        Ok(s)
    })
}

pub fn serve(
    sock: std::net::UdpSocket,
    container: String,
    lookup: Arc<dyn Lookup>,
) -> std::io::Result<AbortHandle> {
    let sock = Arc::new(tokio::net::UdpSocket::from_std(sock)?);
    Ok(tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                continue;
            };
            let query = buf[..n].to_vec();
            let (sock, container, lookup) = (sock.clone(), container.clone(), lookup.clone());
            tokio::spawn(async move {
                if let Some(reply) = handle(&query, &container, lookup.as_ref()).await {
                    let _ = sock.send_to(&reply, from).await;
                }
            });
        }
    })
    .abort_handle())
}

async fn handle(query: &[u8], container: &str, lookup: &dyn Lookup) -> Option<Vec<u8>> {
    let (name, qtype, qclass, end) = parse_question(query)?;
    if qclass == CLASS_IN {
        if let Some(addrs) = lookup.lookup(container, &name) {
            return Some(answer(query, qtype, end, &addrs));
        }
    }
    for up in lookup.upstreams(container) {
        if let Some(r) = forward(query, up).await {
            return Some(r);
        }
    }
    Some(servfail(query, end))
}

async fn forward(query: &[u8], upstream: SocketAddr) -> Option<Vec<u8>> {
    let bind: SocketAddr = if upstream.is_ipv4() {
        "0.0.0.0:0".parse().ok()?
    } else {
        "[::]:0".parse().ok()?
    };
    let s = tokio::net::UdpSocket::bind(bind).await.ok()?;
    s.connect(upstream).await.ok()?;
    s.send(query).await.ok()?;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(FORWARD_TIMEOUT, s.recv(&mut buf))
        .await
        .ok()?
        .ok()?;
    buf.truncate(n);
    (n >= 2 && buf[0..2] == query[0..2]).then_some(buf)
}

/// Nameservers in resolv.conf text.
pub fn nameservers(resolv: &str) -> Vec<SocketAddr> {
    resolv
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|ip| ip.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in name.split('.') {
            q.push(l.len() as u8);
            q.extend_from_slice(l.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&1u16.to_be_bytes());
        q
    }

    #[test]
    fn parses_and_answers_a_queries() {
        let q = query("Web.Example", TYPE_A);
        let (name, t, c, end) = parse_question(&q).unwrap();
        assert_eq!((name.as_str(), t, c, end), ("web.example", 1, 1, q.len()));
        let both = [
            IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)),
            IpAddr::V6("fd00::5".parse().unwrap()),
        ];
        let r = answer(&q, t, end, &both);
        assert_eq!(&r[0..2], &[0x12, 0x34]);
        assert_eq!(r[2] & 0x80, 0x80, "a response");
        assert_eq!(u16::from_be_bytes([r[6], r[7]]), 1);
        assert_eq!(&r[r.len() - 4..], &[10, 1, 2, 3]);
        let aaaa = query("web", 28);
        let (_, t, _, end) = parse_question(&aaaa).unwrap();
        let r = answer(&aaaa, t, end, &both[..1]);
        assert_eq!(
            u16::from_be_bytes([r[6], r[7]]),
            0,
            "no A records in an AAAA answer"
        );
        let r = answer(&aaaa, t, end, &both);
        assert_eq!(u16::from_be_bytes([r[6], r[7]]), 1);
        assert_eq!(
            r[r.len() - 16..],
            "fd00::5".parse::<std::net::Ipv6Addr>().unwrap().octets()
        );
        assert_eq!(servfail(&aaaa, end)[3] & 0x0f, 2);
    }

    #[test]
    fn garbage_is_ignored() {
        assert!(parse_question(&[1, 2, 3]).is_none());
        let mut q = query("a", 1);
        q.truncate(q.len() - 2);
        assert!(parse_question(&q).is_none());
        assert!(parse_question(&[0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 200]).is_none());
    }

    #[test]
    fn reads_nameservers() {
        let ns = nameservers("# x\nnameserver 10.0.0.1\nnameserver ::1\nsearch a\n");
        assert_eq!(ns.len(), 2);
        assert_eq!(ns[0].to_string(), "10.0.0.1:53");
    }
}
