//! Stages of a Dockerfile: the ARGs before the first FROM, one stage per
//! FROM, the target, and which stages the target needs (as BuildKit, the
//! others are skipped).

use super::parser::{Dockerfile, Instruction};
use super::words;
use super::BuildError;

#[derive(Debug, Clone)]
pub struct Stage {
    /// `AS name`, lower case.
    pub name: Option<String>,
    pub from: Instruction,
    /// The FROM image after meta-arg substitution.
    pub base: String,
    pub platform: Option<String>,
    pub steps: Vec<Instruction>,
}

#[derive(Debug, Clone)]
pub struct Plan {
    /// ARG instructions before the first FROM.
    pub meta_args: Vec<Instruction>,
    /// Values of the meta args (defaults overridden by build args).
    pub meta_values: Vec<(String, String)>,
    pub stages: Vec<Stage>,
    /// Index of the stage to build.
    pub target: usize,
    /// Stages to run, in order.
    pub needed: Vec<usize>,
    pub escape: char,
}

/// `--flag=value` words at the start of an instruction's arguments.
pub fn split_flags(rest: &str) -> (Vec<(String, String)>, String) {
    let mut flags = Vec::new();
    let mut r = rest.trim_start();
    while let Some(after) = r.strip_prefix("--") {
        let end = after.find(char::is_whitespace).unwrap_or(after.len());
        let word = &after[..end];
        let (k, v) = word.split_once('=').unwrap_or((word, ""));
        flags.push((k.to_ascii_lowercase(), v.to_owned()));
        r = after[end..].trim_start();
    }
    (flags, r.to_owned())
}

impl Plan {
    pub fn stage_index(&self, name: &str) -> Option<usize> {
        let lower = name.to_ascii_lowercase();
        if let Some(i) = self
            .stages
            .iter()
            .position(|s| s.name.as_deref() == Some(&lower))
        {
            return Some(i);
        }
        name.parse::<usize>()
            .ok()
            .filter(|i| *i < self.stages.len())
    }

    pub fn total_steps(&self) -> usize {
        self.meta_args.len()
            + self
                .needed
                .iter()
                .map(|i| 1 + self.stages[*i].steps.len())
                .sum::<usize>()
    }
}

pub fn plan(
    df: &Dockerfile,
    build_args: &[(String, Option<String>)],
    target: &str,
) -> Result<Plan, BuildError> {
    if df.instructions.is_empty() {
        return Err(BuildError::Invalid(String::new()));
    }
    let mut meta_args = Vec::new();
    let mut meta_values: Vec<(String, String)> = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for ins in &df.instructions {
        match (ins.keyword.as_str(), stages.last_mut()) {
            ("from", _) => {
                let (flags, rest) = split_flags(&ins.rest);
                let mut platform = None;
                for (k, v) in flags {
                    match k.as_str() {
                        "platform" => platform = Some(v),
                        other => {
                            return Err(BuildError::Invalid(format!(
                                "dockerfile parse error line {}: Unknown flag: {other}",
                                ins.line
                            )))
                        }
                    }
                }
                let parts: Vec<&str> = rest.split_whitespace().collect();
                let (image, name) = match parts.as_slice() {
                    [image] => (*image, None),
                    [image, as_kw, name] if as_kw.eq_ignore_ascii_case("as") => {
                        (*image, Some(name.to_ascii_lowercase()))
                    }
                    _ => {
                        return Err(BuildError::Invalid(format!(
                            "dockerfile parse error line {}: FROM requires either one or three arguments",
                            ins.line
                        )))
                    }
                };
                let base = words::word(image, df.escape, &meta_values)?.value;
                if base.is_empty() {
                    return Err(BuildError::Invalid(format!(
                        "base name ({image}) should not be blank"
                    )));
                }
                if let Some(n) = &name {
                    if stages.iter().any(|s| s.name.as_ref() == Some(n)) {
                        return Err(BuildError::Invalid(format!("duplicate name {n}")));
                    }
                }
                stages.push(Stage {
                    name,
                    from: ins.clone(),
                    base,
                    platform,
                    steps: Vec::new(),
                });
            }
            ("arg", None) => {
                for (name, default) in arg_decls(&ins.rest, df.escape, &meta_values)? {
                    let given = build_args.iter().rev().find(|(k, _)| *k == name);
                    let value = match given {
                        Some((_, Some(v))) => Some(v.clone()),
                        _ => default,
                    };
                    if let Some(v) = value {
                        meta_values.push((name, v));
                    }
                }
                meta_args.push(ins.clone());
            }
            (_, None) => {
                return Err(BuildError::Invalid(format!(
                    "dockerfile parse error line {}: {} cannot be used before FROM",
                    ins.line,
                    ins.keyword.to_ascii_uppercase()
                )))
            }
            (_, Some(stage)) => stage.steps.push(ins.clone()),
        }
    }
    if stages.is_empty() {
        return Err(BuildError::Invalid(
            "no build stage in current context".into(),
        ));
    }
    let mut plan = Plan {
        meta_args,
        meta_values,
        stages,
        target: 0,
        needed: Vec::new(),
        escape: df.escape,
    };
    plan.target = if target.is_empty() {
        plan.stages.len() - 1
    } else {
        plan.stages
            .iter()
            .position(|s| s.name.as_deref() == Some(&target.to_ascii_lowercase()))
            .ok_or_else(|| {
                BuildError::Invalid(format!(
                    "failed to reach build target {target} in Dockerfile"
                ))
            })?
    };
    plan.needed = needed(&plan);
    Ok(plan)
}

/// `ARG a=1 b` declarations: names and defaults.
pub fn arg_decls(
    rest: &str,
    escape: char,
    vars: &dyn words::Vars,
) -> Result<Vec<(String, Option<String>)>, BuildError> {
    let mut out = Vec::new();
    for w in words::raw_words(rest, escape) {
        match w.split_once('=') {
            Some((k, v)) => {
                let v = words::word(v, escape, vars)?.value;
                out.push((k.to_owned(), Some(v)));
            }
            None => out.push((w, None)),
        }
    }
    if out.is_empty() {
        return Err(BuildError::Invalid(
            "ARG requires exactly one argument".into(),
        ));
    }
    Ok(out)
}

/// Stages the target depends on (FROM an earlier stage, COPY --from),
/// in Dockerfile order.
fn needed(plan: &Plan) -> Vec<usize> {
    let mut want = vec![false; plan.stages.len()];
    let mut stack = vec![plan.target];
    while let Some(i) = stack.pop() {
        if want[i] {
            continue;
        }
        want[i] = true;
        stack.extend(plan.deps(i));
    }
    (0..plan.stages.len()).filter(|i| want[*i]).collect()
}

impl Plan {
    /// Earlier stages stage `i` builds on: its FROM and COPY --from.
    pub fn deps(&self, i: usize) -> Vec<usize> {
        let s = &self.stages[i];
        let mut deps = Vec::new();
        if let Some(j) = self.stage_index_before(&s.base, i) {
            deps.push(j);
        }
        for step in &s.steps {
            if step.keyword == "copy" || step.keyword == "add" {
                let (flags, _) = split_flags(&step.rest);
                for (k, v) in flags {
                    if k == "from" {
                        if let Some(j) = self.stage_index_before(&v, i) {
                            deps.push(j);
                        }
                    }
                }
            }
        }
        deps
    }

    /// A stage named `name` (or numbered) defined before stage `before`.
    pub fn stage_index_before(&self, name: &str, before: usize) -> Option<usize> {
        self.stage_index(name).filter(|j| *j < before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::parser::parse;

    #[test]
    fn stages_targets_and_skipping() {
        let df = parse(
            "ARG BASE=busybox\nFROM $BASE AS a\nRUN x\nFROM busybox AS unused\nRUN y\nFROM scratch\nCOPY --from=a /x /x\n",
        )
        .unwrap();
        let p = plan(&df, &[], "").unwrap();
        assert_eq!(p.stages[0].base, "busybox");
        assert_eq!(p.target, 2);
        assert_eq!(p.needed, vec![0, 2]);
        assert_eq!(p.total_steps(), 5);
        let p = plan(&df, &[("BASE".into(), Some("alpine".into()))], "unused").unwrap();
        assert_eq!(p.stages[0].base, "alpine");
        assert_eq!(p.needed, vec![1]);
        assert!(plan(&df, &[], "nope").is_err());
        assert!(plan(&parse("RUN x\n").unwrap(), &[], "").is_err());
    }
}
