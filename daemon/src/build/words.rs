//! Word splitting, quote removal and variable substitution as the
//! Dockerfile reference defines them for ADD, COPY, ENV, EXPOSE, FROM,
//! LABEL, STOPSIGNAL, USER, VOLUME and WORKDIR: `$VAR`, `${VAR}`,
//! `${VAR:-word}`, `${VAR:+word}` (and the forms without `:`), escapes and
//! single/double quotes.

use super::BuildError;

/// Variables visible to substitution.
pub trait Vars {
    fn get(&self, name: &str) -> Option<String>;
}

impl Vars for [(String, String)] {
    fn get(&self, name: &str) -> Option<String> {
        self.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

impl Vars for Vec<(String, String)> {
    fn get(&self, name: &str) -> Option<String> {
        Vars::get(self.as_slice(), name)
    }
}

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    vars: &'a dyn Vars,
    /// Names substituted, so the cache key can include the build args used.
    used: Vec<String>,
}

fn bad(msg: impl Into<String>) -> BuildError {
    BuildError::Invalid(msg.into())
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        self.pos += 1;
        c
    }

    /// One word; `split`: stop at unquoted whitespace. None at the end.
    fn word(&mut self, split: bool) -> Result<Option<String>, BuildError> {
        if split {
            while self.peek().is_some_and(char::is_whitespace) {
                self.pos += 1;
            }
        }
        if self.peek().is_none() {
            return Ok(None);
        }
        let mut out = String::new();
        while let Some(c) = self.peek() {
            if split && c.is_whitespace() {
                break;
            }
            self.pos += 1;
            match c {
                '\'' => {
                    loop {
                        match self.next() {
                        Some('\'') => break,
                        Some(c) => out.push(c),
                        None => return Err(bad("unexpected end of statement while looking for matching single-quote")),
                    }
                    }
                }
                '"' => loop {
                    match self.next() {
                        Some('"') => break,
                        Some('$') => out.push_str(&self.dollar()?),
                        Some(c) if c == self.escape => match self.next() {
                            Some(n @ ('"' | '$')) => out.push(n),
                            Some(n) if n == self.escape => out.push(n),
                            Some(n) => {
                                out.push(c);
                                out.push(n);
                            }
                            None => return Err(bad("unexpected end of statement while looking for matching double-quote")),
                        },
                        Some(c) => out.push(c),
                        None => return Err(bad("unexpected end of statement while looking for matching double-quote")),
                    }
                },
                '$' => out.push_str(&self.dollar()?),
                c if c == self.escape => {
                    if let Some(n) = self.next() {
                        out.push(n);
                    }
                }
                c => out.push(c),
            }
        }
        Ok(Some(out))
    }

    fn name(&mut self) -> String {
        let mut n = String::new();
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                n.push(c);
                self.pos += 1;
            } else {
                break;
            }
        }
        n
    }

    fn lookup(&mut self, name: &str) -> Option<String> {
        self.used.push(name.to_owned());
        self.vars.get(name)
    }

    /// After a `$`.
    fn dollar(&mut self) -> Result<String, BuildError> {
        match self.peek() {
            Some('{') => {
                self.pos += 1;
                let name = self.name();
                if name.is_empty() {
                    return Err(bad("bad substitution: missing variable name"));
                }
                let value = self.lookup(&name);
                match self.next() {
                    Some('}') => Ok(value.unwrap_or_default()),
                    Some(c @ (':' | '-' | '+' | '?')) => {
                        let colon = c == ':';
                        let op = if colon { self.next() } else { Some(c) };
                        let word = self.until_brace()?;
                        let set = match &value {
                            Some(v) => !colon || !v.is_empty(),
                            None => false,
                        };
                        match op {
                            Some('-') => Ok(if set { value.unwrap_or_default() } else { word }),
                            Some('+') => Ok(if set { word } else { String::new() }),
                            Some('?') if !set => Err(bad(format!(
                                "{name}: {}",
                                if word.is_empty() {
                                    "is not allowed to be unset".to_owned()
                                } else {
                                    word
                                }
                            ))),
                            Some('?') => Ok(value.unwrap_or_default()),
                            _ => Err(bad(format!(
                                "unsupported modifier in substitution of {name}"
                            ))),
                        }
                    }
                    _ => Err(bad(format!("missing '}}' in substitution of {name}"))),
                }
            }
            Some(c) if c.is_ascii_alphanumeric() || c == '_' => {
                let name = self.name();
                Ok(self.lookup(&name).unwrap_or_default())
            }
            _ => Ok("$".into()),
        }
    }

    /// The word of a `${VAR:-word}` up to its `}`, itself expanded.
    fn until_brace(&mut self) -> Result<String, BuildError> {
        let mut out = String::new();
        loop {
            match self.next() {
                Some('}') => return Ok(out),
                Some('$') => out.push_str(&self.dollar()?),
                Some(c) if c == self.escape => {
                    if let Some(n) = self.next() {
                        out.push(n);
                    }
                }
                Some('\'') => {
                    loop {
                        match self.next() {
                        Some('\'') => break,
                        Some(c) => out.push(c),
                        None => return Err(bad("unexpected end of statement while looking for matching single-quote")),
                    }
                    }
                }
                Some(c) => out.push(c),
                None => return Err(bad("missing '}' in variable substitution")),
            }
        }
    }
}

/// Substitution result with the variable names it looked up.
pub struct Expanded<T> {
    pub value: T,
    pub used: Vec<String>,
}

fn lexer<'a>(s: &str, escape: char, vars: &'a dyn Vars) -> Lexer<'a> {
    Lexer {
        chars: s.chars().collect(),
        pos: 0,
        escape,
        vars,
        used: Vec::new(),
    }
}

/// The whole string as one word (WORKDIR, USER, STOPSIGNAL, ENV values).
pub fn word(s: &str, escape: char, vars: &dyn Vars) -> Result<Expanded<String>, BuildError> {
    let mut lx = lexer(s, escape, vars);
    let value = lx.word(false)?.unwrap_or_default();
    Ok(Expanded {
        value,
        used: lx.used,
    })
}

/// The body of a COPY/ADD heredoc with an unquoted delimiter: variables
/// are substituted, but quotes and other text stay as written, as BuildKit
/// does (the file is data, not shell words). An escaped `$` is a literal.
pub fn heredoc_text(
    s: &str,
    escape: char,
    vars: &dyn Vars,
) -> Result<Expanded<String>, BuildError> {
    let mut lx = lexer(s, escape, vars);
    let mut out = String::with_capacity(s.len());
    while let Some(c) = lx.next() {
        match c {
            '$' => out.push_str(&lx.dollar()?),
            c if c == escape && lx.peek() == Some('$') => {
                lx.pos += 1;
                out.push('$');
            }
            c => out.push(c),
        }
    }
    Ok(Expanded {
        value: out,
        used: lx.used,
    })
}

/// Whitespace-separated words (EXPOSE, VOLUME, COPY sources).
pub fn words(s: &str, escape: char, vars: &dyn Vars) -> Result<Expanded<Vec<String>>, BuildError> {
    let mut lx = lexer(s, escape, vars);
    let mut value = Vec::new();
    while let Some(w) = lx.word(true)? {
        value.push(w);
    }
    Ok(Expanded {
        value,
        used: lx.used,
    })
}

/// Splits on unquoted whitespace keeping quotes and escapes (for
/// `key=value` lists, where each word is expanded afterwards).
pub fn raw_words(s: &str, escape: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    let mut in_word = false;
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                cur.push(c);
                if c == escape && q == '"' {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                } else if c == q {
                    quote = None;
                }
            }
            None if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            None => {
                in_word = true;
                cur.push(c);
                if c == escape {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                } else if c == '"' || c == '\'' {
                    quote = Some(c);
                }
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

/// ENV / LABEL / ARG style `k=v k2="v 2"` pairs, or the legacy `ENV k v`
/// form (`legacy_ok`). Keys are taken as written, values expanded.
pub fn name_values(
    s: &str,
    escape: char,
    vars: &dyn Vars,
    instruction: &str,
    legacy_ok: bool,
) -> Result<Expanded<Vec<(String, String)>>, BuildError> {
    let raw = raw_words(s, escape);
    let mut used = Vec::new();
    if raw.is_empty() {
        return Err(bad(format!("{instruction} requires at least one argument")));
    }
    if !raw[0].contains('=') {
        if !legacy_ok {
            return Err(bad(format!("{instruction} names can not be blank")));
        }
        let key = raw[0].clone();
        let value_raw = s.trim_start()[key.len()..].trim();
        if value_raw.is_empty() {
            return Err(bad(format!("{instruction} must have two arguments")));
        }
        let v = word(value_raw, escape, vars)?;
        used.extend(v.used);
        return Ok(Expanded {
            value: vec![(key, v.value)],
            used,
        });
    }
    let mut pairs = Vec::new();
    for w in raw {
        let Some((k, v)) = w.split_once('=') else {
            return Err(bad(format!(
                "Syntax error - can't find = in \"{w}\". Must be of the form: name=value"
            )));
        };
        let k = word(k, escape, vars)?;
        if k.value.is_empty() {
            return Err(bad(format!("{instruction} names can not be blank")));
        }
        let v = word(v, escape, vars)?;
        used.extend(k.used);
        used.extend(v.used);
        pairs.push((k.value, v.value));
    }
    Ok(Expanded { value: pairs, used })
}

/// A JSON array of strings (exec form), if `s` is one.
pub fn json_array(s: &str) -> Option<Vec<String>> {
    let t = s.trim();
    if !t.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(t).ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn heredoc_text_substitutes_variables_only() {
        let vars = vec![("FOO".to_owned(), "bar".to_owned())];
        let out = heredoc_text(
            "echo \"hi ${FOO}\" '$FOO' \\$FOO ${NONE:-x} $ 5\n",
            '\\',
            &vars,
        )
        .unwrap();
        assert_eq!(out.value, "echo \"hi bar\" 'bar' $FOO x $ 5\n");
        assert_eq!(out.used, vec!["FOO", "FOO", "NONE"]);
    }

    use super::*;

    fn vars() -> Vec<(String, String)> {
        vec![
            ("A".into(), "1".into()),
            ("E".into(), "".into()),
            ("P".into(), "/p".into()),
        ]
    }

    #[test]
    fn substitution_forms() {
        let v = vars();
        let w = |s: &str| word(s, '\\', &v).unwrap().value;
        assert_eq!(w("$A-${A}"), "1-1");
        assert_eq!(w("${Z:-dflt}/${A:-x}/${E:-e}/${E-f}"), "dflt/1/e/");
        assert_eq!(w("${A:+set}|${Z:+set}|${E:+set}|${E+set}"), "set|||set");
        assert_eq!(w("'$A' \"$A\" \\$A"), "$A 1 $A");
        assert_eq!(w("${P}/bin"), "/p/bin");
        assert!(word("${A", '\\', &v).is_err());
        assert!(word("${Z:?must be set}", '\\', &v).is_err());
    }

    #[test]
    fn words_and_pairs() {
        let v = vars();
        assert_eq!(
            words("a \"b c\"  $A", '\\', &v).unwrap().value,
            ["a", "b c", "1"]
        );
        let p = name_values("A=1 B=\"two words\" C=$A", '\\', &v, "ENV", true)
            .unwrap()
            .value;
        assert_eq!(
            p,
            [
                ("A".to_string(), "1".to_string()),
                ("B".into(), "two words".into()),
                ("C".into(), "1".into())
            ]
        );
        let p = name_values("K some value $A", '\\', &v, "ENV", true).unwrap();
        assert_eq!(p.value, [("K".to_string(), "some value 1".to_string())]);
        assert_eq!(p.used, ["A"]);
        assert_eq!(json_array("[\"sh\", \"-c\"]").unwrap(), ["sh", "-c"]);
        assert!(json_array("echo [x]").is_none());
    }
}
