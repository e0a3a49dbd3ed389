//! Signal names and numbers as the API takes them (`SIGTERM`, `TERM`,
//! `term`, `15`).

const SIGNALS: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("IOT", libc::SIGIOT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("POLL", libc::SIGPOLL),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

/// Parse a signal; the error is dockerd's message.
pub fn parse(raw: &str) -> Result<i32, String> {
    let s = raw.trim();
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
        return Err(format!("Invalid signal: {raw}"));
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(rt) = name.strip_prefix("RTMIN") {
        let off: i32 = if rt.is_empty() {
            0
        } else {
            rt.trim_start_matches('+')
                .parse()
                .map_err(|_| format!("Invalid signal: {raw}"))?
        };
        return realtime(libc::SIGRTMIN().checked_add(off), raw);
    }
    if let Some(rt) = name.strip_prefix("RTMAX") {
        let off: i32 = if rt.is_empty() {
            0
        } else {
            rt.parse().map_err(|_| format!("Invalid signal: {raw}"))?
        };
        return realtime(libc::SIGRTMAX().checked_add(off), raw);
    }
    SIGNALS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| *v)
        .ok_or_else(|| format!("Invalid signal: {raw}"))
}

/// A real-time signal only between SIGRTMIN and SIGRTMAX (`RTMAX+1`,
/// `RTMIN-3` and overflowing offsets name none).
fn realtime(n: Option<i32>, raw: &str) -> Result<i32, String> {
    n.filter(|n| (libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(n))
        .ok_or_else(|| format!("Invalid signal: {raw}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realtime_signals_stay_in_range() {
        assert_eq!(parse("SIGRTMAX"), Ok(libc::SIGRTMAX()));
        assert_eq!(parse("RTMIN+2"), Ok(libc::SIGRTMIN() + 2));
        assert_eq!(parse("SIGRTMAX-1"), Ok(libc::SIGRTMAX() - 1));
        for bad in ["SIGRTMAX+1", "RTMIN-1", "RTMIN+2147483647", "RTMAX-99"] {
            assert_eq!(parse(bad), Err(format!("Invalid signal: {bad}")));
        }
    }

    #[test]
    fn names_and_numbers() {
        assert_eq!(parse("SIGTERM"), Ok(15));
        assert_eq!(parse("kill"), Ok(9));
        assert_eq!(parse("9"), Ok(9));
        assert_eq!(parse("SIGUSR1"), Ok(libc::SIGUSR1));
        assert!(parse("SIGNOPE").is_err());
        assert!(parse("0").is_err());
        assert_eq!(parse("NOPE").unwrap_err(), "Invalid signal: NOPE");
    }
}
