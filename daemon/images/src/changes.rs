//! Dockerfile instructions applied by `docker import --change` and
//! `docker commit --change`: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD,
//! STOPSIGNAL, USER, VOLUME, WORKDIR.

use serde_json::{json, Map, Value};

use crate::error::{Error, Result};

const VALID: &[&str] = &[
    "cmd",
    "entrypoint",
    "env",
    "expose",
    "label",
    "onbuild",
    "stopsignal",
    "user",
    "volume",
    "workdir",
];

/// Apply `changes` (one instruction per entry; entries may hold several
/// lines) to a container config object.
pub fn apply(config: &mut Map<String, Value>, changes: &[String]) -> Result<()> {
    for change in changes {
        for line in change
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            apply_line(config, line)?;
        }
    }
    Ok(())
}

fn apply_line(config: &mut Map<String, Value>, line: &str) -> Result<()> {
    let (instr, rest) = match line.split_once(char::is_whitespace) {
        Some((i, r)) => (i.to_ascii_lowercase(), r.trim()),
        None => (line.to_ascii_lowercase(), ""),
    };
    if !VALID.contains(&instr.as_str()) {
        return Err(Error::invalid(format!(
            "{instr} is not a valid change command"
        )));
    }
    let need_args = || {
        Error::invalid(format!(
            "{} requires at least one argument",
            instr.to_ascii_uppercase()
        ))
    };
    if rest.is_empty() && instr != "cmd" && instr != "entrypoint" {
        return Err(need_args());
    }
    match instr.as_str() {
        "cmd" => {
            config.insert("Cmd".into(), json!(command_form(rest)?));
        }
        "entrypoint" => {
            config.insert("Entrypoint".into(), json!(command_form(rest)?));
            // dockerd resets CMD when ENTRYPOINT changes in the same build step.
        }
        "env" => {
            let pairs = key_values(rest, "ENV")?;
            let env = config.entry("Env").or_insert_with(|| json!([]));
            let list = env
                .as_array_mut()
                .ok_or_else(|| Error::invalid("config Env is not a list"))?;
            for (k, v) in pairs {
                let prefix = format!("{k}=");
                list.retain(|e| !e.as_str().is_some_and(|s| s.starts_with(&prefix)));
                list.push(json!(format!("{k}={v}")));
            }
        }
        "label" => {
            let pairs = key_values(rest, "LABEL")?;
            let labels = config.entry("Labels").or_insert_with(|| json!({}));
            if labels.is_null() {
                *labels = json!({});
            }
            let map = labels
                .as_object_mut()
                .ok_or_else(|| Error::invalid("config Labels is not a map"))?;
            for (k, v) in pairs {
                map.insert(k, json!(v));
            }
        }
        "expose" => {
            let ports = config.entry("ExposedPorts").or_insert_with(|| json!({}));
            if ports.is_null() {
                *ports = json!({});
            }
            let map = ports
                .as_object_mut()
                .ok_or_else(|| Error::invalid("config ExposedPorts is not a map"))?;
            for p in rest.split_whitespace() {
                map.insert(normalize_port(p)?, json!({}));
            }
        }
        "volume" => {
            let list: Vec<String> = if rest.starts_with('[') {
                serde_json::from_str(rest)
                    .map_err(|_| Error::invalid(format!("invalid VOLUME {rest}")))?
            } else {
                rest.split_whitespace().map(str::to_owned).collect()
            };
            let vols = config.entry("Volumes").or_insert_with(|| json!({}));
            if vols.is_null() {
                *vols = json!({});
            }
            let map = vols
                .as_object_mut()
                .ok_or_else(|| Error::invalid("config Volumes is not a map"))?;
            for v in list {
                if v.trim().is_empty() {
                    return Err(Error::invalid(
                        "VOLUME specified can not be an empty string",
                    ));
                }
                map.insert(v, json!({}));
            }
        }
        "workdir" => {
            let cur = config
                .get("WorkingDir")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let wd = if rest.starts_with('/') || cur.is_empty() {
                if rest.starts_with('/') {
                    rest.to_owned()
                } else {
                    format!("/{rest}")
                }
            } else {
                format!("{}/{}", cur.trim_end_matches('/'), rest)
            };
            config.insert("WorkingDir".into(), json!(wd));
        }
        "user" => {
            config.insert("User".into(), json!(rest));
        }
        "stopsignal" => {
            config.insert("StopSignal".into(), json!(rest));
        }
        "onbuild" => {
            let first = rest
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            if first == "ONBUILD" || first == "FROM" || first == "MAINTAINER" {
                return Err(Error::invalid(format!(
                    "{first} isn't allowed as an ONBUILD trigger"
                )));
            }
            let list = config.entry("OnBuild").or_insert_with(|| json!([]));
            if list.is_null() {
                *list = json!([]);
            }
            list.as_array_mut()
                .ok_or_else(|| Error::invalid("config OnBuild is not a list"))?
                .push(json!(rest));
        }
        _ => {
            return Err(Error::invalid(format!(
                "{instr} is not a valid change command"
            )))
        }
    }
    Ok(())
}

/// JSON (exec) form or shell form (`/bin/sh -c "..."`).
fn command_form(rest: &str) -> Result<Vec<String>> {
    if rest.starts_with('[') {
        if let Ok(v) = serde_json::from_str::<Vec<String>>(rest) {
            return Ok(v);
        }
    }
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    Ok(vec!["/bin/sh".into(), "-c".into(), rest.into()])
}

fn normalize_port(p: &str) -> Result<String> {
    let (port, proto) = match p.split_once('/') {
        Some((a, b)) => (a, b.to_ascii_lowercase()),
        None => (p, "tcp".to_owned()),
    };
    let valid_num = |s: &str| s.parse::<u16>().is_ok();
    let ok = match port.split_once('-') {
        Some((a, b)) => valid_num(a) && valid_num(b),
        None => valid_num(port),
    };
    if !ok || !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(Error::invalid(format!("invalid containerPort: {p}")));
    }
    Ok(format!("{port}/{proto}"))
}

/// `k=v k2="v 2"` or the legacy single pair `k v`.
fn key_values(rest: &str, instr: &str) -> Result<Vec<(String, String)>> {
    let words = split_words(rest)?;
    let first_raw = rest.split_whitespace().next().unwrap_or("");
    if !first_raw.contains('=') {
        // Legacy form: the first word is the key, the rest the value.
        let (k, v) = rest
            .split_once(char::is_whitespace)
            .ok_or_else(|| Error::invalid(format!("{instr} must have two arguments")))?;
        return Ok(vec![(k.to_owned(), unquote(v.trim())?)]);
    }
    words
        .into_iter()
        .map(|w| {
            let (k, v) = w.split_once('=').ok_or_else(|| {
                Error::invalid(format!(
                    "Syntax error - can't find = in \"{w}\". Must be of the form: name=value"
                ))
            })?;
            if k.is_empty() {
                return Err(Error::invalid(format!("{instr} names can not be blank")));
            }
            Ok((k.to_owned(), v.to_owned()))
        })
        .collect()
}

fn unquote(s: &str) -> Result<String> {
    let words = split_words(s)?;
    Ok(words.join(" "))
}

/// Split on unquoted whitespace, removing quotes and backslash escapes.
fn split_words(s: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => cur.push(c),
            (_, '\\') => {
                in_word = true;
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            (_, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err(Error::invalid(format!("unmatched quote in {s:?}")));
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(changes: &[&str]) -> Map<String, Value> {
        let mut m = Map::new();
        apply(
            &mut m,
            &changes.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
        .unwrap();
        m
    }

    #[test]
    fn applies_instructions() {
        let c = run(&[
            r#"CMD ["sh"]"#,
            "ENTRYPOINT /bin/echo hi",
            "ENV A=1 B=\"two words\"",
            "ENV LEGACY some value",
            "EXPOSE 80 53/udp",
            "WORKDIR /srv",
            "WORKDIR app",
            "USER nobody",
            "LABEL a=b \"c d\"=e",
            "VOLUME [\"/data\"]",
            "STOPSIGNAL SIGINT",
            "ONBUILD RUN true",
        ]);
        assert_eq!(c["Cmd"], json!(["sh"]));
        assert_eq!(c["Entrypoint"], json!(["/bin/sh", "-c", "/bin/echo hi"]));
        assert_eq!(c["Env"], json!(["A=1", "B=two words", "LEGACY=some value"]));
        assert_eq!(c["ExposedPorts"], json!({"80/tcp": {}, "53/udp": {}}));
        assert_eq!(c["WorkingDir"], json!("/srv/app"));
        assert_eq!(c["User"], json!("nobody"));
        assert_eq!(c["Labels"], json!({"a": "b", "c d": "e"}));
        assert_eq!(c["Volumes"], json!({"/data": {}}));
        assert_eq!(c["StopSignal"], json!("SIGINT"));
        assert_eq!(c["OnBuild"], json!(["RUN true"]));
    }

    #[test]
    fn env_replaces_existing_key() {
        let c = run(&["ENV A=1", "ENV A=2"]);
        assert_eq!(c["Env"], json!(["A=2"]));
    }

    #[test]
    fn rejects_invalid() {
        let mut m = Map::new();
        let e = apply(&mut m, &["RUN echo".into()]).unwrap_err();
        assert_eq!(e.to_string(), "run is not a valid change command");
        assert!(apply(&mut m, &["EXPOSE notaport".into()]).is_err());
        assert!(apply(&mut m, &["ENV".into()]).is_err());
    }
}
