//! The userland port proxy: one tokio task per published port inside
//! berthd (no process per port). With iptables the kernel forwards
//! published ports (see `portfwd`) and this proxy only answers what the
//! kernel leaves to it: connections to 127.0.0.1 and from containers on the
//! same bridge. TCP connections are spliced to the container; UDP datagrams
//! are relayed through one upstream socket per client address, dropped
//! after a quiet minute.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, UdpSocket};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::AbortHandle;

use super::ports::{PortRequest, Proto, Published};

const UDP_IDLE: Duration = Duration::from_secs(60);
/// Per-direction buffer of a TCP splice (tokio's default is 8 KiB; bulk
/// transfers through the proxy are several times faster with 64 KiB).
const TCP_BUFFER: usize = 64 * 1024;

pub enum Bound {
    Tcp(TcpListener),
    Udp(UdpSocket),
    /// Bound, never served: the kernel forwards the port (DNAT happens
    /// before a socket is looked up) and the socket only keeps anyone else
    /// from taking it.
    Reserved(OwnedFd),
}

/// A v6 socket bound with IPV6_V6ONLY, so that `::` and 0.0.0.0 are two
/// separate bindings of the same port (as dockerd binds them).
fn bind_v6_only(proto: Proto, addr: SocketAddr) -> io::Result<socket2::Socket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let (ty, protocol) = match proto {
        Proto::Tcp => (Type::STREAM, Protocol::TCP),
        Proto::Udp => (Type::DGRAM, Protocol::UDP),
    };
    let s = Socket::new(Domain::IPV6, ty, Some(protocol))?;
    s.set_only_v6(true)?;
    if proto == Proto::Tcp {
        s.set_reuse_address(true)?;
    }
    s.bind(&addr.into())?;
    if proto == Proto::Tcp {
        s.listen(1024)?;
    }
    Ok(s)
}

fn bind_one(proto: Proto, addr: SocketAddr, serve: bool) -> io::Result<(u16, Bound)> {
    let (port, fd): (u16, OwnedFd) = match proto {
        Proto::Tcp => {
            let l = if addr.is_ipv6() {
                TcpListener::from(bind_v6_only(proto, addr)?)
            } else {
                TcpListener::bind(addr)?
            };
            if serve {
                return Ok((l.local_addr()?.port(), Bound::Tcp(l)));
            }
            // Listening (never accepting) keeps the port exclusively ours;
            // a bound-only socket would not stop a second SO_REUSEADDR bind.
            (l.local_addr()?.port(), l.into())
        }
        Proto::Udp => {
            let u = if addr.is_ipv6() {
                UdpSocket::from(bind_v6_only(proto, addr)?)
            } else {
                UdpSocket::bind(addr)?
            };
            if serve {
                return Ok((u.local_addr()?.port(), Bound::Udp(u)));
            }
            (u.local_addr()?.port(), u.into())
        }
    };
    Ok((port, Bound::Reserved(fd)))
}

/// Open the host side of `req` (trying each port of a range); `serve`
/// false only reserves the port. IPv6 ports are always served: no ip6tables
/// rule forwards them, the proxy relays them to the container's v4 address.
pub fn bind(req: &PortRequest, serve: bool) -> Result<(Published, Bound), String> {
    let (lo, hi) = req.host_ports;
    let serve = serve || req.host_ip.is_ipv6();
    let shown = match req.host_ip {
        IpAddr::V6(ip) => format!("[{ip}]"),
        IpAddr::V4(ip) => ip.to_string(),
    };
    let mut last_err = None;
    for port in lo..=hi {
        match bind_one(req.proto, SocketAddr::new(req.host_ip, port), serve) {
            Ok((actual, b)) => {
                let p = Published {
                    proto: req.proto,
                    container_port: req.container_port,
                    host_ip: req.host_ip,
                    host_port: actual,
                };
                return Ok((p, b));
            }
            Err(e) => last_err = Some((port, e)),
        }
    }
    let (port, e) = last_err.unwrap_or((lo, io::Error::other("empty port range")));
    if e.kind() == io::ErrorKind::AddrInUse {
        Err(format!(
            "Bind for {shown}:{port} failed: port is already allocated"
        ))
    } else {
        Err(format!("Bind for {shown}:{port} failed: {e}"))
    }
}

/// A published port's relay task.
pub struct Proxy {
    task: AbortHandle,
    /// A second descriptor of a TCP listener: shut down on close, so the
    /// port is free for a new bind at once rather than whenever the
    /// runtime drops the aborted task (a restart binds it right away).
    listener: Option<OwnedFd>,
}

impl Proxy {
    pub fn close(self) {
        self.task.abort();
        if let Some(fd) = self.listener {
            use std::os::fd::AsRawFd;
            // SAFETY: shutdown(2) on a descriptor this struct owns.
            unsafe {
                libc::shutdown(fd.as_raw_fd(), libc::SHUT_RDWR);
            }
        }
    }
}

/// Start relaying `bound` to `target`; close the proxy to free the port.
pub fn spawn(bound: Bound, target: SocketAddrV4) -> io::Result<Proxy> {
    match bound {
        Bound::Tcp(l) => {
            let dup = OwnedFd::from(l.try_clone()?);
            l.set_nonblocking(true)?;
            let l = tokio::net::TcpListener::from_std(l)?;
            Ok(Proxy {
                task: tokio::spawn(tcp_loop(l, target)).abort_handle(),
                listener: Some(dup),
            })
        }
        Bound::Udp(u) => {
            u.set_nonblocking(true)?;
            let u = Arc::new(tokio::net::UdpSocket::from_std(u)?);
            Ok(Proxy {
                task: tokio::spawn(udp_loop(u, target)).abort_handle(),
                listener: None,
            })
        }
        Bound::Reserved(fd) => {
            let dup = fd.try_clone()?;
            Ok(Proxy {
                task: tokio::spawn(async move {
                    let _held = fd;
                    std::future::pending::<()>().await
                })
                .abort_handle(),
                listener: Some(dup),
            })
        }
    }
}

async fn tcp_loop(listener: tokio::net::TcpListener, target: SocketAddrV4) {
    loop {
        let (mut inbound, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "port proxy accept");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        tokio::spawn(async move {
            let _ = inbound.set_nodelay(true);
            match tokio::net::TcpStream::connect(target).await {
                Ok(mut out) => {
                    let _ = out.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional_with_sizes(
                        &mut inbound,
                        &mut out,
                        TCP_BUFFER,
                        TCP_BUFFER,
                    )
                    .await;
                }
                Err(e) => {
                    tracing::debug!(%peer, %target, error = %e, "port proxy: container did not accept")
                }
            }
        });
    }
}

/// Client address → the upstream socket relaying its datagrams.
type Flows = Arc<Mutex<HashMap<SocketAddr, Arc<tokio::net::UdpSocket>>>>;

async fn udp_loop(front: Arc<tokio::net::UdpSocket>, target: SocketAddrV4) {
    let flows: Flows = Arc::default();
    let mut buf = vec![0u8; 65536];
    // Upstream tasks end with this loop (when the port is closed).
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let (n, client) = match front.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "udp proxy receive");
                continue;
            }
        };
        let existing = flows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&client)
            .cloned();
        let up = match existing {
            Some(u) => u,
            None => {
                let up =
                    match tokio::net::UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))
                        .await
                    {
                        Ok(u) => u,
                        Err(e) => {
                            tracing::warn!(error = %e, "udp proxy: opening an upstream socket");
                            continue;
                        }
                    };
                if let Err(e) = up.connect(target).await {
                    tracing::debug!(error = %e, "udp proxy connect");
                    continue;
                }
                let up = Arc::new(up);
                flows
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(client, up.clone());
                tasks.spawn(udp_replies(
                    up.clone(),
                    front.clone(),
                    client,
                    flows.clone(),
                ));
                up
            }
        };
        let _ = up.send(&buf[..n]).await;
    }
}

async fn udp_replies(
    up: Arc<tokio::net::UdpSocket>,
    front: Arc<tokio::net::UdpSocket>,
    client: SocketAddr,
    flows: Flows,
) {
    let mut buf = vec![0u8; 65536];
    while let Ok(Ok(n)) = tokio::time::timeout(UDP_IDLE, up.recv(&mut buf)).await {
        let _ = front.send_to(&buf[..n], client).await;
    }
    flows
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&client);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflicts_are_reported_like_dockerd() {
        let held = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let req = PortRequest {
            proto: Proto::Tcp,
            container_port: 80,
            host_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            host_ports: (port, port),
        };
        assert_eq!(
            bind(&req, true).err().unwrap(),
            format!("Bind for 127.0.0.1:{port} failed: port is already allocated")
        );
        let any = PortRequest {
            host_ports: (0, 0),
            ..req
        };
        let (p, _b) = bind(&any, true).unwrap();
        assert_ne!(p.host_port, 0);
        // A reservation holds the port without listening on it.
        for proto in [Proto::Tcp, Proto::Udp] {
            let req = PortRequest {
                proto,
                ..any.clone()
            };
            let (p, b) = bind(&req, false).unwrap();
            assert!(matches!(b, Bound::Reserved(_)));
            assert_ne!(p.host_port, 0);
            let again = PortRequest {
                host_ports: (p.host_port, p.host_port),
                ..req
            };
            assert!(bind(&again, false).is_err());
            assert!(bind(&again, true).is_err());
        }
    }

    #[tokio::test]
    async fn relays_tcp_and_udp() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let SocketAddr::V4(target) = echo.local_addr().unwrap() else {
            panic!()
        };
        tokio::spawn(async move {
            let (mut s, _) = echo.accept().await.unwrap();
            let mut b = [0u8; 5];
            s.read_exact(&mut b).await.unwrap();
            s.write_all(&b).await.unwrap();
        });
        let req = PortRequest {
            proto: Proto::Tcp,
            container_port: target.port(),
            host_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            host_ports: (0, 0),
        };
        let (p, b) = bind(&req, true).unwrap();
        let h = spawn(b, target).unwrap();
        let mut c = tokio::net::TcpStream::connect(("127.0.0.1", p.host_port))
            .await
            .unwrap();
        c.write_all(b"hello").await.unwrap();
        let mut got = [0u8; 5];
        c.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello");
        h.close();

        let server = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let SocketAddr::V4(utarget) = server.local_addr().unwrap() else {
            panic!()
        };
        tokio::spawn(async move {
            let mut b = [0u8; 16];
            let (n, from) = server.recv_from(&mut b).await.unwrap();
            server.send_to(&b[..n], from).await.unwrap();
        });
        let req = PortRequest {
            proto: Proto::Udp,
            container_port: utarget.port(),
            host_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            host_ports: (0, 0),
        };
        let (p, b) = bind(&req, true).unwrap();
        let h = spawn(b, utarget).unwrap();
        let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client
            .send_to(b"ping", ("127.0.0.1", p.host_port))
            .await
            .unwrap();
        let mut b = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(5), client.recv(&mut b))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&b[..n], b"ping");
        h.close();
    }
}
