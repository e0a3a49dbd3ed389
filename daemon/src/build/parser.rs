//! Dockerfile syntax: parser directives, comments, line continuations and
//! heredocs, split into one [`Instruction`] per logical line. What the
//! arguments mean is left to the dispatcher.

use super::BuildError;

/// Every instruction of the Dockerfile reference.
const KNOWN: &[&str] = &[
    "add",
    "arg",
    "cmd",
    "copy",
    "entrypoint",
    "env",
    "expose",
    "from",
    "healthcheck",
    "label",
    "maintainer",
    "onbuild",
    "run",
    "shell",
    "stopsignal",
    "user",
    "volume",
    "workdir",
];

/// Instructions whose `<<WORD` arguments start heredocs.
const HEREDOC_INSTRUCTIONS: &[&str] = &["run", "copy", "add"];

/// A Dockerfile bigger than this is refused (dockerd reads it whole, too).
pub const MAX_DOCKERFILE: u64 = 16 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    pub name: String,
    pub content: String,
    /// `<<-`: leading tabs stripped.
    pub chomp: bool,
    /// Quoted delimiter: no variable expansion in the content.
    pub expand: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// Line of the keyword (1-based).
    pub line: usize,
    /// Lower case.
    pub keyword: String,
    /// The logical line as written, continuations joined (the `Step` text).
    pub original: String,
    /// Everything after the keyword.
    pub rest: String,
    pub heredocs: Vec<Heredoc>,
}

#[derive(Debug, Clone)]
pub struct Dockerfile {
    pub escape: char,
    pub instructions: Vec<Instruction>,
}

fn parse_error(line: usize, msg: impl std::fmt::Display) -> BuildError {
    BuildError::Invalid(format!("dockerfile parse error line {line}: {msg}"))
}

/// `# key=value` before anything else: the parser directives.
fn directive(line: &str) -> Option<(String, String)> {
    let body = line.trim().strip_prefix('#')?;
    let (k, v) = body.split_once('=')?;
    let k = k.trim();
    if k.is_empty() || k.contains(char::is_whitespace) {
        return None;
    }
    Some((k.to_ascii_lowercase(), v.trim().to_owned()))
}

/// The line ends with the escape character (trailing whitespace aside):
/// returns it without that character.
fn continued(line: &str, escape: char) -> Option<&str> {
    let t = line.trim_end();
    t.strip_suffix(escape)
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

pub fn parse(text: &str) -> Result<Dockerfile, BuildError> {
    let lines: Vec<&str> = text.lines().collect();
    let mut escape = '\\';
    let mut i = 0;
    // Directives: only at the very top, each key once.
    let mut seen = Vec::new();
    while i < lines.len() {
        let Some((k, v)) = directive(lines[i]) else {
            break;
        };
        if seen.contains(&k) {
            return Err(parse_error(
                i + 1,
                format!("only one {k} parser directive can be used"),
            ));
        }
        if k == "escape" {
            escape = match v.as_str() {
                "\\" => '\\',
                "`" => '`',
                other => {
                    return Err(parse_error(
                        i + 1,
                        format!("invalid escape token '{other}' does not validate"),
                    ))
                }
            };
        }
        seen.push(k);
        i += 1;
    }
    let mut out = Vec::new();
    while i < lines.len() {
        let first = lines[i];
        let start = i;
        i += 1;
        if first.trim().is_empty() || is_comment(first) {
            continue;
        }
        let mut original = String::new();
        let mut cur = first;
        loop {
            match continued(cur, escape) {
                Some(head) => {
                    original.push_str(head);
                    // Comment and empty lines inside a continuation are dropped.
                    let mut next = None;
                    while i < lines.len() {
                        let l = lines[i];
                        i += 1;
                        if is_comment(l) || l.trim().is_empty() {
                            continue;
                        }
                        next = Some(l);
                        break;
                    }
                    match next {
                        Some(l) => cur = l,
                        None => break,
                    }
                }
                None => {
                    original.push_str(cur);
                    break;
                }
            }
        }
        let original = original.trim().to_owned();
        let (word, rest) = match original.find(char::is_whitespace) {
            Some(p) => (&original[..p], original[p..].trim_start()),
            None => (original.as_str(), ""),
        };
        let keyword = word.to_ascii_lowercase();
        if !KNOWN.contains(&keyword.as_str()) {
            return Err(parse_error(
                start + 1,
                format!("unknown instruction: {}", word.to_ascii_uppercase()),
            ));
        }
        let mut heredocs = Vec::new();
        if HEREDOC_INSTRUCTIONS.contains(&keyword.as_str()) {
            for (name, chomp, expand) in heredoc_markers(rest) {
                let mut content = String::new();
                let mut closed = false;
                while i < lines.len() {
                    let l = lines[i];
                    i += 1;
                    let cmp = if chomp { l.trim_start_matches('\t') } else { l };
                    if cmp == name {
                        closed = true;
                        break;
                    }
                    content.push_str(cmp);
                    content.push('\n');
                }
                if !closed {
                    return Err(parse_error(
                        start + 1,
                        format!("unterminated heredoc {name}"),
                    ));
                }
                heredocs.push(Heredoc {
                    name,
                    content,
                    chomp,
                    expand,
                });
            }
        }
        out.push(Instruction {
            line: start + 1,
            keyword,
            rest: rest.to_owned(),
            original: original.clone(),
            heredocs,
        });
    }
    Ok(Dockerfile {
        escape,
        instructions: out,
    })
}

/// `<<EOF`, `<<-EOF`, `<<"EOF"` words of an instruction: (name, chomp, expand).
pub fn heredoc_markers(rest: &str) -> Vec<(String, bool, bool)> {
    let mut found = Vec::new();
    for word in rest.split_whitespace() {
        let Some(mut w) = word.strip_prefix("<<") else {
            continue;
        };
        let chomp = w.starts_with('-');
        if chomp {
            w = &w[1..];
        }
        let mut expand = true;
        for q in ['"', '\''] {
            if w.len() >= 2 && w.starts_with(q) && w.ends_with(q) {
                w = &w[1..w.len() - 1];
                expand = false;
            }
        }
        if !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            found.push((w.to_owned(), chomp, expand));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuations_comments_and_keywords() {
        let df = parse(
            "# syntax=docker/dockerfile:1\n# escape=\\\n\nFROM busybox AS b\n# c\nRUN echo a \\\n# inside\n  b\ncmd [\"sh\"]\n",
        )
        .unwrap();
        let kw: Vec<&str> = df.instructions.iter().map(|i| i.keyword.as_str()).collect();
        assert_eq!(kw, ["from", "run", "cmd"]);
        assert_eq!(df.instructions[1].original, "RUN echo a   b");
        assert_eq!(df.instructions[1].line, 6);
        assert_eq!(df.instructions[2].rest, "[\"sh\"]");
    }

    #[test]
    fn unknown_instruction_has_line() {
        let e = parse("FROM busybox\nRUN true\nRUNN x\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "dockerfile parse error line 3: unknown instruction: RUNN"
        );
    }

    #[test]
    fn escape_directive_and_heredoc() {
        let df =
            parse("# escape=`\nFROM busybox\nRUN echo a `\n b\nRUN <<EOF\necho x\nEOF\n").unwrap();
        assert_eq!(df.escape, '`');
        assert_eq!(df.instructions[1].original, "RUN echo a  b");
        assert_eq!(df.instructions[2].heredocs[0].content, "echo x\n");
        assert!(parse("FROM x\nRUN <<EOF\nno end\n").is_err());
    }
}
