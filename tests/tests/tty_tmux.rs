//! Interactive terminals driven the way a person uses them: the docker CLI
//! in a tmux pane, keys sent with `send-keys`, the screen read back with
//! `capture-pane`. Covers `docker run -it` and `docker exec -it`: echo,
//! ctrl-c, window size after a resize, and ctrl-p ctrl-q detach.

use std::process::Command;
use std::time::{Duration, Instant};

use berth_tests::Daemon;

/// A private tmux server with one 100x30 window running /bin/sh, killed
/// (with everything in it) on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(d: &Daemon) -> Tmux {
        let out = Command::new("tmux").arg("-V").output();
        assert!(
            out.is_ok_and(|o| o.status.success()),
            "tmux is required for the TTY tests (apt-get install tmux)"
        );
        let socket = format!(
            "berth-e-{}",
            std::process::id() as u64 * 1000 + rand_suffix()
        );
        let t = Tmux { socket };
        let env = format!(
            "env DOCKER_HOST={} DOCKER_CONFIG={} DOCKER_CLI_HINTS=false PS1='host$ ' /bin/sh",
            d.host(),
            d.dir.path().join("docker-config").display()
        );
        t.tmux(&[
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            "100",
            "-y",
            "30",
            &env,
        ]);
        t.tmux(&["set-option", "-t", "t", "remain-on-exit", "on"]);
        t.wait_for("host$", Duration::from_secs(10));
        t
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run tmux");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Type `text` and press Enter.
    fn line(&self, text: &str) {
        self.tmux(&["send-keys", "-t", "t", "-l", text]);
        self.tmux(&["send-keys", "-t", "t", "Enter"]);
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend_from_slice(keys);
        self.tmux(&args);
    }

    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", "t", "-S", "-200"])
    }

    /// Wait until some line of the screen, trimmed, satisfies `pred`.
    #[track_caller]
    fn wait_line(&self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            let screen = self.screen();
            if screen.lines().any(|l| pred(l.trim())) {
                return;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}; screen:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait until the host shell's prompt is the last thing on screen.
    #[track_caller]
    fn wait_prompt(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let screen = self.screen();
            if screen
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .is_some_and(|l| l.trim().ends_with("host$"))
            {
                return;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for the host prompt; screen:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    #[track_caller]
    fn wait_for(&self, text: &str, timeout: Duration) {
        self.wait_line(text, timeout, |l| l.contains(text));
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64 % 1000)
        .unwrap_or(0)
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
    }
}

/// Echo, ctrl-c and the window size inside an interactive shell that shows
/// the `/ # ` prompt.
fn exercise_shell(t: &Tmux) {
    t.line("echo hel''lo-tty");
    t.wait_line("echoed output", Duration::from_secs(10), |l| {
        l == "hello-tty"
    });
    // ctrl-c reaches the foreground process (the shell survives it).
    t.line("sleep 300");
    std::thread::sleep(Duration::from_millis(300));
    t.keys(&["C-c"]);
    t.line("echo after-ctrl-c");
    t.wait_line("the shell after ctrl-c", Duration::from_secs(10), |l| {
        l == "after-ctrl-c"
    });
    // The window size comes from the client, and follows a resize.
    t.line("stty size");
    t.wait_line("the initial size", Duration::from_secs(10), |l| {
        l == "30 100"
    });
    t.tmux(&["resize-window", "-t", "t", "-x", "120", "-y", "40"]);
    std::thread::sleep(Duration::from_millis(500));
    t.line("stty size");
    t.wait_line("the resized size", Duration::from_secs(10), |l| {
        l == "40 120"
    });
    t.tmux(&["resize-window", "-t", "t", "-x", "100", "-y", "30"]);
    std::thread::sleep(Duration::from_millis(300));
}

#[test]
fn exec_it_shell_echo_ctrl_c_resize_detach() {
    let d = Daemon::start();
    d.load_busybox();
    let c = d
        .docker_ok(&[
            "run", "-d", "--name", "tty-exec", "busybox", "sleep", "1000",
        ])
        .trim()
        .to_string();
    let t = Tmux::start(&d);
    t.line("docker exec -it tty-exec sh");
    t.wait_for("/ #", Duration::from_secs(20));
    exercise_shell(&t);
    // Leave a marker process, detach with ctrl-p ctrl-q: the CLI returns,
    // the exec's shell keeps running.
    t.line("sleep 500 &");
    std::thread::sleep(Duration::from_millis(300));
    t.keys(&["C-p", "C-q"]);
    t.wait_prompt();
    std::thread::sleep(Duration::from_millis(500));
    let ps = d.docker_ok(&["exec", &c, "ps", "-o", "args"]);
    assert!(
        ps.lines().any(|l| l.trim() == "sh"),
        "the detached exec's shell is gone:\n{ps}"
    );
    assert!(
        ps.lines().any(|l| l.trim() == "sleep 500"),
        "the detached exec's shell is gone:\n{ps}"
    );
    assert_eq!(
        d.docker_ok(&["inspect", "-f", "{{.State.Status}}", &c])
            .trim(),
        "running"
    );
    // A plain `exit` ends an exec session with its code.
    t.line("docker exec -it tty-exec sh -c 'exit 5'; echo code=$?");
    t.wait_line("the exec exit code", Duration::from_secs(20), |l| {
        l == "code=5"
    });
    drop(t);
    d.docker_ok(&["rm", "-f", &c]);
}

#[test]
fn run_it_shell_echo_ctrl_c_resize() {
    let d = Daemon::start();
    d.load_busybox();
    let t = Tmux::start(&d);
    t.line("docker run -it --name tty-run busybox sh");
    t.wait_for("/ #", Duration::from_secs(20));
    exercise_shell(&t);
    t.line("exit 3");
    t.wait_prompt();
    t.line("echo run-code=$?");
    t.wait_line("the run exit code", Duration::from_secs(20), |l| {
        l == "run-code=3"
    });
    drop(t);
    d.docker_ok(&["rm", "-f", "tty-run"]);
}

#[test]
fn run_it_detach_then_attach_again() {
    let d = Daemon::start();
    d.load_busybox();
    let t = Tmux::start(&d);
    t.line("docker run -it --name tty-detach busybox sh");
    t.wait_for("/ #", Duration::from_secs(20));
    t.line("echo first-session");
    t.wait_line("output before detaching", Duration::from_secs(10), |l| {
        l == "first-session"
    });
    t.keys(&["C-p", "C-q"]);
    t.wait_prompt();
    assert_eq!(
        d.docker_ok(&["inspect", "-f", "{{.State.Status}}", "tty-detach"])
            .trim(),
        "running"
    );
    t.line("docker attach tty-detach");
    std::thread::sleep(Duration::from_millis(500));
    t.line("echo second-session");
    t.wait_line(
        "output after attaching again",
        Duration::from_secs(10),
        |l| l == "second-session",
    );
    t.line("exit 4");
    t.wait_prompt();
    t.line("echo attach-code=$?");
    t.wait_line("the attach exit code", Duration::from_secs(10), |l| {
        l == "attach-code=4"
    });
    drop(t);
    d.docker_ok(&["rm", "-f", "tty-detach"]);
}
