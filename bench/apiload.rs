//! Keep-alive HTTP load over a unix socket for bench/*.sh (std only, built
//! by bench_apiload in bench/lib.sh with rustc -O; not a workspace crate so
//! the daemon's build is untouched).
//!
//!   apiload SOCKET get PATH CLIENTS SECONDS
//!   apiload SOCKET run IMAGE RUNS
//!   apiload SOCKET exec CONTAINER RUNS
//!   apiload SOCKET mixed IMAGE CONTAINER CLIENTS SECONDS
//!
//! get: CLIENTS threads each open one connection and send `GET PATH` back
//! to back for SECONDS, reading every answer in full (Content-Length or
//! chunked). Prints one line: `requests rps p50_ms p99_ms errors bytes`,
//! where bytes is the size of the largest body (to check the answer is the
//! full list). A non-2xx answer counts as an error.
//!
//! run: RUNS times on one keep-alive connection, `POST /containers/create`
//! (IMAGE, `true`, network none), `start`, `wait`, `DELETE` -- what
//! `docker run --rm` asks of the daemon, without the CLI's start-up.
//! exec: `POST /containers/CONTAINER/exec` (`true`, stdout and stderr
//! attached) and `POST /exec/ID/start` without an upgrade (the output is
//! the body), as client libraries do it. Both print `median p10 p90` in ms
//! after one unmeasured warm-up.
//!
//! Every client waits for an answer in poll(2), as Go's netpoller (the
//! docker CLI) and curl do, and reads only once it is there. A client that
//! sleeps in read(2) instead is woken for nothing each time the engine reads
//! the request (the kernel wakes a unix socket's blocked readers when its
//! send space frees), and on these 2 cores those wake-ups cost the engine
//! under test as much CPU as its own work.
//! mixed: CLIENTS threads, each on its own keep-alive connection, repeat
//! for SECONDS a round of what tools do all day: run `true` (create, start,
//! wait, logs, delete), list all containers, inspect CONTAINER, exec `true`
//! in it, list images, info. Prints `rounds requests errors`.
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

fn read_response(r: &mut BufReader<UnixStream>) -> std::io::Result<(u16, Vec<u8>)> {
    if r.buffer().is_empty() {
        wait_readable(r.get_ref())?;
    }
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut length = None;
    let mut chunked = false;
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let lower = l.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse::<usize>().ok();
        } else if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let n = usize::from_str_radix(line.trim(), 16).map_err(std::io::Error::other)?;
            let start = body.len();
            body.resize(start + n + 2, 0);
            r.read_exact(&mut body[start..])?;
            body.truncate(start + n);
            if n == 0 {
                break;
            }
        }
    } else if let Some(n) = length {
        body.resize(n, 0);
        r.read_exact(&mut body)?;
    } else if status != 204 && status != 304 {
        // A raw stream (dockerd's exec start without an upgrade): the body
        // ends when the connection does.
        r.read_to_end(&mut body)?;
        return Err(std::io::Error::new(std::io::ErrorKind::ConnectionAborted, ClosedBody(status, body)));
    }
    Ok((status, body))
}

/// A response whose body ran to the end of the connection.
#[derive(Debug)]
struct ClosedBody(u16, Vec<u8>);

impl std::fmt::Display for ClosedBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "status {} with a body up to the end of the connection", self.0)
    }
}

impl std::error::Error for ClosedBody {}

#[repr(C)]
struct PollFd {
    fd: i32,
    events: i16,
    revents: i16,
}

extern "C" {
    fn poll(fds: *mut PollFd, nfds: u64, timeout_ms: i32) -> i32;
}

const POLLIN: i16 = 1;

/// Waits until `s` has something to read, its peer closed it, or
/// ANSWER_TIMEOUT passed (the read that follows then times out too).
fn wait_readable(s: &UnixStream) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let mut fd = PollFd { fd: s.as_raw_fd(), events: POLLIN, revents: 0 };
    loop {
        // SAFETY: one valid pollfd for the duration of the call.
        if unsafe { poll(&mut fd, 1, ANSWER_TIMEOUT.as_millis() as i32) } >= 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// No answer within this long is an error: an engine that stopped answering
/// (dockerd 20.10 can deadlock under the mixed load) ends the run with
/// errors counted instead of hanging it.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

fn connect(sock: &str) -> std::io::Result<UnixStream> {
    let s = UnixStream::connect(sock)?;
    s.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    s.set_write_timeout(Some(ANSWER_TIMEOUT))?;
    Ok(s)
}

/// A kept connection, opened again after an answer that closed it.
struct Conn {
    sock: String,
    r: Option<BufReader<UnixStream>>,
}

/// One request; the body of a 2xx answer, else an error.
fn call(c: &mut Conn, method: &str, path: &str, body: &str) -> std::io::Result<Vec<u8>> {
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let r = match c.r.as_mut() {
        Some(r) => r,
        None => c.r.insert(BufReader::new(connect(&c.sock)?)),
    };
    r.get_mut().write_all(req.as_bytes())?;
    let (status, out) = match read_response(r) {
        Ok(x) => x,
        Err(e) => {
            c.r = None;
            match e.into_inner().map(|i| i.downcast::<ClosedBody>()) {
                Some(Ok(closed)) => (closed.0, closed.1),
                Some(Err(inner)) => return Err(std::io::Error::other(inner)),
                None => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            }
        }
    };
    if !(200..300).contains(&status) {
        return Err(std::io::Error::other(format!(
            "{method} {path}: {status} {}",
            String::from_utf8_lossy(&out)
        )));
    }
    Ok(out)
}

/// The value of `"Id":"…"` in a JSON answer.
fn id_of(body: &[u8]) -> std::io::Result<String> {
    let s = String::from_utf8_lossy(body);
    s.split("\"Id\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .map(str::to_string)
        .ok_or_else(|| std::io::Error::other(format!("no Id in {s}")))
}

fn one_run(r: &mut Conn, image: &str) -> std::io::Result<()> {
    let body = format!(
        "{{\"Image\":\"{image}\",\"Cmd\":[\"true\"],\"HostConfig\":{{\"NetworkMode\":\"none\"}}}}"
    );
    let id = id_of(&call(r, "POST", "/v1.41/containers/create", &body)?)?;
    call(r, "POST", &format!("/v1.41/containers/{id}/start"), "")?;
    call(r, "POST", &format!("/v1.41/containers/{id}/wait"), "")?;
    call(r, "DELETE", &format!("/v1.41/containers/{id}"), "")?;
    Ok(())
}

fn one_exec(r: &mut Conn, container: &str) -> std::io::Result<()> {
    let body = r#"{"Cmd":["true"],"AttachStdout":true,"AttachStderr":true}"#;
    let id = id_of(&call(r, "POST", &format!("/v1.41/containers/{container}/exec"), body)?)?;
    call(r, "POST", &format!("/v1.41/exec/{id}/start"), "{}")?;
    Ok(())
}

fn one_mixed_round(r: &mut Conn, image: &str, container: &str) -> std::io::Result<usize> {
    let body = format!("{{\"Image\":\"{image}\",\"Cmd\":[\"true\"],\"HostConfig\":{{\"NetworkMode\":\"none\"}}}}");
    let id = id_of(&call(r, "POST", "/v1.41/containers/create", &body)?)?;
    call(r, "POST", &format!("/v1.41/containers/{id}/start"), "")?;
    call(r, "POST", &format!("/v1.41/containers/{id}/wait"), "")?;
    call(r, "GET", &format!("/v1.41/containers/{id}/logs?stdout=1&stderr=1"), "")?;
    call(r, "DELETE", &format!("/v1.41/containers/{id}"), "")?;
    call(r, "GET", "/v1.41/containers/json?all=1", "")?;
    call(r, "GET", &format!("/v1.41/containers/{container}/json"), "")?;
    one_exec(r, container)?;
    call(r, "GET", "/v1.41/images/json", "")?;
    call(r, "GET", "/v1.41/info", "")?;
    Ok(12)
}

/// CLIENTS threads of `one_mixed_round` until SECONDS have passed.
fn mixed(sock: &str, image: &str, container: &str, clients: usize, secs: f64) {
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let (sock, image, container) = (sock.to_string(), image.to_string(), container.to_string());
            std::thread::spawn(move || {
                let mut r = Conn { sock, r: None };
                let (mut rounds, mut requests, mut errors) = (0u64, 0u64, 0u64);
                while Instant::now() < until {
                    match one_mixed_round(&mut r, &image, &container) {
                        Ok(n) => {
                            rounds += 1;
                            requests += n as u64;
                        }
                        Err(e) => {
                            if errors == 0 {
                                eprintln!("apiload mixed: {e}");
                            }
                            errors += 1;
                            r.r = None;
                        }
                    }
                }
                (rounds, requests, errors)
            })
        })
        .collect();
    let (mut rounds, mut requests, mut errors) = (0, 0, 0);
    for h in handles {
        let (a, b, c) = h.join().expect("client thread");
        rounds += a;
        requests += b;
        errors += c;
    }
    println!("{rounds} {requests} {errors}");
}

fn sequence(sock: &str, what: &str, arg: &str, runs: usize) -> std::io::Result<()> {
    let mut r = Conn { sock: sock.to_string(), r: None };
    let step = |r: &mut Conn| match what {
        "run" => one_run(r, arg),
        _ => one_exec(r, arg),
    };
    step(&mut r)?;
    let mut ms = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        step(&mut r)?;
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    ms.sort_by(|a, b| a.total_cmp(b));
    let n = ms.len();
    let median = if n % 2 == 1 { ms[n / 2] } else { (ms[n / 2 - 1] + ms[n / 2]) / 2.0 };
    println!("{median:.2} {:.2} {:.2}", ms[n / 10], ms[(n * 9 / 10).min(n - 1)]);
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = || -> ! {
        eprintln!("usage: apiload SOCKET get PATH CLIENTS SECONDS | SOCKET run IMAGE RUNS | SOCKET exec CONTAINER RUNS | SOCKET mixed IMAGE CONTAINER CLIENTS SECONDS");
        std::process::exit(2);
    };
    if args.len() == 5 && (args[2] == "run" || args[2] == "exec") {
        let runs: usize = args[4].parse().unwrap_or_else(|_| usage());
        if runs == 0 {
            usage();
        }
        if let Err(e) = sequence(&args[1], &args[2], &args[3], runs) {
            eprintln!("apiload {}: {e}", args[2]);
            std::process::exit(1);
        }
        return;
    }
    if args.len() == 7 && args[2] == "mixed" {
        let clients: usize = args[5].parse().unwrap_or_else(|_| usage());
        let secs: f64 = args[6].parse().unwrap_or_else(|_| usage());
        mixed(&args[1], &args[3], &args[4], clients, secs);
        return;
    }
    if args.len() != 6 || args[2] != "get" {
        usage();
    }
    let sock = args[1].clone();
    let path = args[3].clone();
    let clients: usize = args[4].parse().unwrap_or_else(|_| usage());
    let secs: f64 = args[5].parse().unwrap_or_else(|_| usage());
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let t0 = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let sock = sock.clone();
            let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
            std::thread::spawn(move || {
                let mut lat = Vec::new();
                let mut errors = 0u64;
                let mut bytes = 0;
                let mut conn: Option<BufReader<UnixStream>> = None;
                while Instant::now() < until {
                    let r = match conn.as_mut() {
                        Some(r) => r,
                        None => match connect(&sock) {
                            Ok(s) => conn.insert(BufReader::with_capacity(1 << 16, s)),
                            Err(_) => {
                                errors += 1;
                                std::thread::sleep(Duration::from_millis(10));
                                continue;
                            }
                        },
                    };
                    let t = Instant::now();
                    let res = r
                        .get_mut()
                        .write_all(req.as_bytes())
                        .and_then(|_| read_response(r));
                    match res {
                        Ok((status, body)) if (200..300).contains(&status) => {
                            lat.push(t.elapsed());
                            bytes = body.len();
                        }
                        Ok(_) => errors += 1,
                        Err(_) => {
                            errors += 1;
                            conn = None;
                        }
                    }
                }
                (lat, errors, bytes)
            })
        })
        .collect();
    let mut lat = Vec::new();
    let mut errors = 0;
    let mut bytes = 0;
    for h in handles {
        let (l, e, b) = h.join().expect("client thread");
        lat.extend(l);
        errors += e;
        bytes = bytes.max(b);
    }
    let wall = t0.elapsed().as_secs_f64();
    lat.sort();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
        lat[i].as_secs_f64() * 1000.0
    };
    println!(
        "{} {:.0} {:.2} {:.2} {} {}",
        lat.len(),
        lat.len() as f64 / wall,
        pct(0.5),
        pct(0.99),
        errors,
        bytes
    );
}
