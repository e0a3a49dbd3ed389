//! `.dockerignore`: Go `filepath.Match` patterns per path segment, `**`
//! for any number of segments, `!` exceptions; the last matching pattern
//! decides, and a path whose parent is excluded is excluded too.

use berth_images::filters::glob_match;

#[derive(Debug, Clone)]
struct Pattern {
    segments: Vec<String>,
    exclude: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Ignore {
    patterns: Vec<Pattern>,
}

/// Lexically cleaned, relative, `/`-separated; `..` above the root dropped.
pub fn clean(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            p => out.push(p),
        }
    }
    out.join("/")
}

impl Ignore {
    pub fn parse(text: &str) -> Ignore {
        let mut patterns = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (exclude, pat) = match line.strip_prefix('!') {
                Some(p) => (false, p.trim()),
                None => (true, line),
            };
            let cleaned = clean(pat);
            if cleaned.is_empty() {
                continue;
            }
            patterns.push(Pattern {
                segments: cleaned.split('/').map(str::to_owned).collect(),
                exclude,
            });
        }
        Ignore { patterns }
    }

    /// Is `path` (relative to the context root) excluded?
    pub fn excluded(&self, path: &str) -> bool {
        let path = clean(path);
        if path.is_empty() {
            return false;
        }
        let parts: Vec<&str> = path.split('/').collect();
        let mut excluded = false;
        for p in &self.patterns {
            // The path itself or one of its parents.
            let hit = (1..=parts.len()).any(|n| segments_match(&p.segments, &parts[..n]));
            if hit {
                excluded = p.exclude;
            }
        }
        excluded
    }

    /// Could anything below directory `path` be re-included by an
    /// exception (so an excluded directory must still be walked)?
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| !p.exclude)
    }
}

/// Iterative `**` matching over segments (at most one backtrack point).
fn segments_match(pat: &[String], path: &[&str]) -> bool {
    let (mut pi, mut si) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    loop {
        if pi < pat.len() && pat[pi] == "**" {
            pi += 1;
            star = Some((pi, si));
            continue;
        }
        if si == path.len() {
            if pi == pat.len() {
                return true;
            }
        } else if pi < pat.len() && glob_match(pat[pi].as_bytes(), path[si].as_bytes()) {
            pi += 1;
            si += 1;
            continue;
        }
        match star {
            Some((after, upto)) if upto < path.len() => {
                star = Some((after, upto + 1));
                pi = after;
                si = upto + 1;
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_and_exceptions() {
        let ig = Ignore::parse("# c\n*.md\n!README.md\nbuild/\n**/*.tmp\nsecret*\n");
        assert!(ig.excluded("x.md"));
        assert!(!ig.excluded("README.md"));
        assert!(!ig.excluded("docs/x.md"));
        assert!(ig.excluded("build/out/a"));
        assert!(ig.excluded("a/b/c.tmp"));
        assert!(ig.excluded("c.tmp"));
        assert!(ig.excluded("secret.txt"));
        assert!(!ig.excluded("src/main.rs"));
        assert!(Ignore::parse("**").excluded("any/thing"));
    }
}
