//! Slow clients (issue 9.8): a request whose body stops arriving is ended
//! after the idle limit (30 s without a byte) instead of being held for
//! ever, while streams that legitimately stay open longer (events here)
//! keep going.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use berth_tests::Daemon;

#[test]
fn a_stalled_request_body_is_ended_but_long_streams_are_not() {
    let d = Daemon::with_busybox();

    // An events stream, open before and after the body times out.
    let mut events = UnixStream::connect(&d.socket).unwrap();
    events
        .write_all(b"GET /events HTTP/1.1\r\nHost: berth\r\n\r\n")
        .unwrap();
    events
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let mut events = BufReader::new(events);
    let mut status = String::new();
    events.read_line(&mut status).unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");

    // Headers promise 1000 bytes; 10 arrive, then nothing.
    let mut slow = UnixStream::connect(&d.socket).unwrap();
    slow.write_all(
        b"POST /containers/create HTTP/1.1\r\nHost: berth\r\n\
          Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"Image\":",
    )
    .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let _ = slow.read_to_end(&mut answer);
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(60),
        "the stalled request was held {waited:?}"
    );
    assert!(
        waited >= Duration::from_secs(25),
        "ended before the idle limit: {waited:?}"
    );
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
        "{answer}"
    );
    assert_eq!(
        d.docker_ok(&["ps", "-aq"]).trim(),
        "",
        "a container was created from half a body"
    );

    // The events stream outlived the idle limit and still delivers.
    d.docker_ok(&["create", "--name", "after", "busybox"]);
    let mut line = String::new();
    loop {
        line.clear();
        let n = events.read_line(&mut line).unwrap();
        assert!(n > 0, "the events stream ended");
        if line.contains("\"create\"") && line.contains("after") {
            break;
        }
    }
    d.docker_ok(&["rm", "after"]);
}
