//! Runs the planned stages step by step: every step yields an image (a
//! layer only when files changed, otherwise a config-only child marked
//! `empty_layer`), found in the cache when its key is known.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use berth_images::import::CommitOptions;
use berth_images::Image;
use serde_json::{json, Map, Value};

use super::copy::{self, CopyRequest};
use super::parser::{self, Instruction};
use super::plan::{self, split_flags, Plan};
use super::run::{self, RunSpec};
use super::stepfs::StepRoot;
use super::words;
use super::{cache, BuildContext, BuildError, BuildOptions, Builder, Output};
use crate::containers::archive::FsView;

/// Messages a stage may run ahead of the client (it streams once the
/// stages before it are through).
const STAGE_BUFFER: usize = 1 << 16;

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A parsed build, ready to run.
pub struct Prepared {
    builder: Arc<Builder>,
    ctx: BuildContext,
    plan: Plan,
    opts: BuildOptions,
}

struct StageState {
    image: Option<Arc<Image>>,
    config: Map<String, Value>,
    /// ARGs declared in this stage, with their values (if any).
    args: Vec<(String, Option<String>)>,
    author: String,
    /// CMD given in this stage (an ENTRYPOINT then keeps it).
    cmd_set: bool,
}

impl StageState {
    fn parent_id(&self) -> String {
        self.image
            .as_ref()
            .map(|i| i.id.to_string())
            .unwrap_or_default()
    }

    fn env(&self) -> Vec<String> {
        str_list(self.config.get("Env"))
    }

    /// Substitution variables: ARG values, then ENV (ENV wins).
    fn vars(&self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = self
            .args
            .iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
            .collect();
        for e in self.env() {
            if let Some((k, val)) = e.split_once('=') {
                v.push((k.to_owned(), val.to_owned()));
            }
        }
        v
    }

    /// Build args for RUN: declared, valued, not shadowed by ENV.
    fn run_args(&self) -> Vec<(String, String)> {
        let env = self.env();
        let mut out: Vec<(String, String)> = Vec::new();
        for (k, v) in &self.args {
            let Some(v) = v else { continue };
            if env.iter().any(|e| e.split('=').next() == Some(k)) {
                continue;
            }
            out.retain(|(x, _)| x != k);
            out.push((k.clone(), v.clone()));
        }
        out.sort();
        out
    }

    fn shell(&self) -> Vec<String> {
        let s = str_list(self.config.get("Shell"));
        if s.is_empty() {
            vec!["/bin/sh".into(), "-c".into()]
        } else {
            s
        }
    }

    fn working_dir(&self) -> String {
        self.config
            .get("WorkingDir")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    }
}

fn str_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Go's `%q` of a string slice, as dockerd prints CMD and ENTRYPOINT.
fn go_quoted(list: &[String]) -> String {
    let items: Vec<String> = list
        .iter()
        .map(|s| serde_json::to_string(s).unwrap_or_default())
        .collect();
    format!("[{}]", items.join(" "))
}

fn short(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..12.min(hex.len())]
}

fn step_err(e: impl std::fmt::Display) -> BuildError {
    BuildError::Step(e.to_string())
}

impl Builder {
    /// Reads and parses the Dockerfile and plans the stages: every error
    /// here is answered before the build's stream starts.
    pub fn prepare(
        self: &Arc<Self>,
        ctx: BuildContext,
        opts: BuildOptions,
    ) -> Result<Prepared, BuildError> {
        let name = if opts.dockerfile.is_empty() {
            "Dockerfile".to_owned()
        } else {
            opts.dockerfile.clone()
        };
        let text = ctx.dockerfile(&name)?;
        let df = parser::parse(&text)?;
        if df.instructions.is_empty() {
            return Err(BuildError::Invalid(format!(
                "the Dockerfile ({name}) cannot be empty"
            )));
        }
        let mut plan = plan::plan(&df, &opts.build_args, &opts.target)?;
        if !opts.labels.is_empty() {
            // As dockerd: the labels become a last LABEL step of the target.
            let text: Vec<String> = opts
                .labels
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{}={}",
                        serde_json::to_string(k).unwrap_or_default(),
                        serde_json::to_string(v).unwrap_or_default()
                    )
                })
                .collect();
            let rest = text.join(" ");
            let target = plan.target;
            plan.stages[target].steps.push(Instruction {
                line: 0,
                keyword: "label".into(),
                original: format!("LABEL {rest}"),
                rest,
                heredocs: Vec::new(),
            });
        }
        Ok(Prepared {
            builder: self.clone(),
            ctx,
            plan,
            opts,
        })
    }
}

impl Prepared {
    /// Runs the build; returns the final image ID.
    pub async fn run(self, out: Output) -> Result<String, BuildError> {
        let total = self.plan.total_steps();
        let mut n = 0usize;
        for ins in &self.plan.meta_args {
            n += 1;
            out.stream(format!("Step {n}/{total} : {}", ins.original))
                .await?;
            out.stream("\n").await?;
        }
        let ignore = self.ctx.ignore();
        // Independent stages run at the same time (as BuildKit); each
        // writes to its own buffer, and the buffers reach the client in
        // Dockerfile order, so the output reads as a sequential build.
        let (done_tx, done_rx) = watch::channel(BTreeMap::<usize, Option<Arc<Image>>>::new());
        let mut stage_runs = Vec::new();
        let mut buffers = Vec::new();
        for &si in &self.plan.needed {
            let (tx, rx) = mpsc::channel(STAGE_BUFFER);
            buffers.push(rx);
            let stage_out = Output::new(tx, out.quiet);
            let first = n;
            n += 1 + self.plan.stages[si].steps.len();
            stage_runs.push(self.run_stage(
                si,
                first,
                total,
                stage_out,
                &ignore,
                &done_tx,
                done_rx.clone(),
            ));
        }
        let forward = async {
            for mut rx in buffers {
                loop {
                    let m = tokio::select! {
                        m = rx.recv() => m,
                        _ = out.closed() => return Err(BuildError::Cancelled),
                    };
                    match m {
                        Some(m) => out.send(m).await?,
                        None => break,
                    }
                }
            }
            Ok::<(), BuildError>(())
        };
        // Not try_join: after a failed stage the forwarder still delivers
        // what the stages wrote before the error.
        let (used, forwarded) =
            tokio::join!(futures_util::future::try_join_all(stage_runs), forward);
        let used = used?;
        forwarded?;
        let mut used_args: Vec<String> = self
            .plan
            .meta_values
            .iter()
            .map(|(k, _)| k.clone())
            .collect();
        used_args.extend(used.into_iter().flatten());
        let last = done_rx.borrow().get(&self.plan.target).cloned().flatten();
        let Some(image) = last else {
            return Err(BuildError::Step(
                "No image was generated. Is your Dockerfile empty?".into(),
            ));
        };
        let unused: Vec<&str> = self
            .opts
            .build_args
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| !used_args.iter().any(|u| u == k) && !is_predefined_arg(k))
            .collect();
        if !unused.is_empty() {
            out.stream(format!(
                "[Warning] One or more build-args [{}] were not consumed\n",
                unused.join(" ")
            ))
            .await?;
        }
        let id = image.id.to_string();
        out.aux(&id).await?;
        if self.opts.quiet {
            out.always(format!("{id}\n")).await?;
        } else {
            out.stream(format!("Successfully built {}\n", short(&id)))
                .await?;
        }
        for t in &self.opts.tags {
            let started = std::time::Instant::now();
            self.builder.images.tag(&id, t).map_err(step_err)?;
            tracing::debug!(
                ms = started.elapsed().as_secs_f64() * 1000.0,
                "build tagged"
            );
            out.stream(format!("Successfully tagged {}\n", t.familiar()))
                .await?;
        }
        Ok(id)
    }

    /// One stage, once the stages it needs are built; returns the build
    /// args it used.
    #[allow(clippy::too_many_arguments)]
    async fn run_stage(
        &self,
        si: usize,
        first: usize,
        total: usize,
        out: Output,
        ignore: &super::ignore::Ignore,
        done: &watch::Sender<BTreeMap<usize, Option<Arc<Image>>>>,
        mut done_rx: watch::Receiver<BTreeMap<usize, Option<Arc<Image>>>>,
    ) -> Result<Vec<String>, BuildError> {
        let deps = self.plan.deps(si);
        done_rx
            .wait_for(|m| deps.iter().all(|d| m.contains_key(d)))
            .await
            .map_err(|_| BuildError::Cancelled)?;
        let results = done_rx.borrow().clone();
        let stage = &self.plan.stages[si];
        let mut used = Vec::new();
        let mut n = first + 1;
        out.stream(format!("Step {n}/{total} : {}", stage.from.original))
            .await?;
        out.stream("\n").await?;
        let mut st = self.from(stage, si, &results, &out).await?;
        let base_id = st
            .image
            .as_ref()
            .map(|i| i.id.to_string())
            .unwrap_or_default();
        out.stream(format!(" ---> {}\n", short(&base_id))).await?;
        self.run_triggers(&mut st, &out, ignore, &results, &mut used)
            .await?;
        for ins in &stage.steps {
            n += 1;
            out.stream(format!("Step {n}/{total} : {}", ins.original))
                .await?;
            out.stream("\n").await?;
            let t = std::time::Instant::now();
            self.step(&mut st, ins, &out, ignore, &results, &mut used)
                .await?;
            tracing::debug!(
                step = n,
                instruction = %ins.keyword,
                ms = t.elapsed().as_secs_f64() * 1000.0,
                "build step done"
            );
        }
        if si != self.plan.target {
            if let Some(img) = &st.image {
                out.aux(&img.id.to_string()).await?;
            }
        }
        done.send_modify(|m| {
            m.insert(si, st.image.clone());
        });
        Ok(used)
    }

    async fn from(
        &self,
        stage: &plan::Stage,
        si: usize,
        results: &BTreeMap<usize, Option<Arc<Image>>>,
        out: &Output,
    ) -> Result<StageState, BuildError> {
        if let Some(p) = &stage.platform {
            let host = format!("linux/{}", host_arch());
            if !p.is_empty() && p != "linux" && *p != host {
                return Err(BuildError::Step(format!(
                    "platform {p} is not supported: this daemon builds for {host}"
                )));
            }
        }
        let image = if let Some(j) = self.plan.stage_index_before(&stage.base, si) {
            results.get(&j).cloned().flatten()
        } else if stage.base.eq_ignore_ascii_case("scratch") {
            None
        } else {
            let images = &self.builder.images;
            let image = match images.resolve(&stage.base) {
                Ok(image) => image,
                Err(_) => {
                    self.builder.pull_base(&stage.base, &self.opts, out).await?;
                    images
                        .resolve(&stage.base)
                        .map_err(|e| BuildError::Step(e.to_string()))?
                }
            };
            Some(image)
        };
        let config = match &image {
            Some(img) => match img.container_config() {
                Value::Object(m) => m,
                _ => Map::new(),
            },
            None => {
                let mut m = Map::new();
                m.insert("Env".into(), json!([DEFAULT_PATH]));
                m
            }
        };
        Ok(StageState {
            image,
            config,
            args: Vec::new(),
            author: String::new(),
            cmd_set: false,
        })
    }

    /// ONBUILD triggers of the base image run first, then are cleared.
    async fn run_triggers(
        &self,
        st: &mut StageState,
        out: &Output,
        ignore: &super::ignore::Ignore,
        results: &BTreeMap<usize, Option<Arc<Image>>>,
        used: &mut Vec<String>,
    ) -> Result<(), BuildError> {
        let triggers = str_list(st.config.get("OnBuild"));
        if triggers.is_empty() {
            return Ok(());
        }
        out.stream(format!(
            "# Executing {} build trigger{}\n",
            triggers.len(),
            if triggers.len() == 1 { "" } else { "s" }
        ))
        .await?;
        st.config.insert("OnBuild".into(), Value::Null);
        for t in triggers {
            let df = parser::parse(&t)?;
            for ins in &df.instructions {
                self.step(st, ins, out, ignore, results, used).await?;
            }
        }
        Ok(())
    }

    fn escape(&self) -> char {
        self.plan.escape
    }

    async fn step(
        &self,
        st: &mut StageState,
        ins: &Instruction,
        out: &Output,
        ignore: &super::ignore::Ignore,
        results: &BTreeMap<usize, Option<Arc<Image>>>,
        used: &mut Vec<String>,
    ) -> Result<(), BuildError> {
        let esc = self.escape();
        let vars = st.vars();
        let mut note_used = |names: Vec<String>| used.extend(names);
        let created_by: String;
        match ins.keyword.as_str() {
            "run" => return self.run_step(st, ins, out, used).await,
            "copy" | "add" => return self.copy_step(st, ins, out, ignore, results).await,
            "workdir" => return self.workdir_step(st, ins, out).await,
            "env" => {
                let pairs = words::name_values(&ins.rest, esc, &vars, "ENV", true)?;
                note_used(pairs.used);
                let mut env = st.env();
                let mut text = Vec::new();
                for (k, v) in pairs.value {
                    env.retain(|e| e.split('=').next() != Some(k.as_str()));
                    env.push(format!("{k}={v}"));
                    text.push(format!("{k}={v}"));
                }
                st.config.insert("Env".into(), json!(env));
                created_by = format!("ENV {}", text.join(" "));
            }
            "label" => {
                let pairs = words::name_values(&ins.rest, esc, &vars, "LABEL", true)?;
                note_used(pairs.used);
                let mut labels = match st.config.get("Labels") {
                    Some(Value::Object(m)) => m.clone(),
                    _ => Map::new(),
                };
                let mut text = Vec::new();
                for (k, v) in pairs.value {
                    text.push(format!("{k}={v}"));
                    labels.insert(k, json!(v));
                }
                st.config.insert("Labels".into(), Value::Object(labels));
                created_by = format!("LABEL {}", text.join(" "));
            }
            "maintainer" => {
                st.author = ins.rest.trim().to_owned();
                created_by = format!("MAINTAINER {}", st.author);
            }
            "expose" => {
                let ports = words::words(&ins.rest, esc, &vars)?;
                note_used(ports.used);
                let mut map = match st.config.get("ExposedPorts") {
                    Some(Value::Object(m)) => m.clone(),
                    _ => Map::new(),
                };
                for p in &ports.value {
                    let key = if p.contains('/') {
                        p.to_ascii_lowercase()
                    } else {
                        format!("{p}/tcp")
                    };
                    let (num, _) = key.split_once('/').unwrap_or((&key, ""));
                    let valid = num.split('-').all(|x| x.parse::<u16>().is_ok());
                    if !valid {
                        return Err(BuildError::Step(format!("invalid containerPort: {p}")));
                    }
                    map.insert(key, json!({}));
                }
                st.config.insert("ExposedPorts".into(), Value::Object(map));
                created_by = format!("EXPOSE {}", ports.value.join(" "));
            }
            "user" => {
                let u = words::word(ins.rest.trim(), esc, &vars)?;
                note_used(u.used);
                st.config.insert("User".into(), json!(u.value));
                created_by = format!("USER {}", u.value);
            }
            "volume" => {
                let list = match words::json_array(&ins.rest) {
                    Some(l) => l,
                    None => {
                        let w = words::words(&ins.rest, esc, &vars)?;
                        note_used(w.used);
                        w.value
                    }
                };
                if list.iter().any(|v| v.trim().is_empty()) {
                    return Err(BuildError::Step(
                        "VOLUME specified can not be an empty string".into(),
                    ));
                }
                let mut map = match st.config.get("Volumes") {
                    Some(Value::Object(m)) => m.clone(),
                    _ => Map::new(),
                };
                for v in &list {
                    map.insert(v.clone(), json!({}));
                }
                st.config.insert("Volumes".into(), Value::Object(map));
                created_by = format!("VOLUME [{}]", list.join(" "));
            }
            "stopsignal" => {
                let s = words::word(ins.rest.trim(), esc, &vars)?;
                note_used(s.used);
                crate::containers::signals::parse(&s.value).map_err(step_err)?;
                st.config.insert("StopSignal".into(), json!(s.value));
                created_by = format!("STOPSIGNAL {}", s.value);
            }
            "shell" => {
                let Some(list) = words::json_array(&ins.rest).filter(|l| !l.is_empty()) else {
                    return Err(BuildError::Step(
                        "SHELL requires the arguments to be in JSON form".into(),
                    ));
                };
                created_by = format!("SHELL [{}]", list.join(" "));
                st.config.insert("Shell".into(), json!(list));
            }
            "cmd" | "entrypoint" => {
                let list = match words::json_array(&ins.rest) {
                    Some(l) => l,
                    None => {
                        let mut s = st.shell();
                        s.push(ins.rest.clone());
                        s
                    }
                };
                let key = if ins.keyword == "cmd" {
                    st.cmd_set = true;
                    "Cmd"
                } else {
                    if !st.cmd_set {
                        st.config.insert("Cmd".into(), Value::Null);
                    }
                    "Entrypoint"
                };
                created_by = format!("{} {}", ins.keyword.to_ascii_uppercase(), go_quoted(&list));
                st.config.insert(key.into(), json!(list));
            }
            "healthcheck" => {
                created_by = format!("HEALTHCHECK {}", healthcheck(&mut st.config, &ins.rest)?);
            }
            "onbuild" => {
                let trigger = ins.rest.trim();
                let kw = trigger
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_ascii_uppercase();
                match kw.as_str() {
                    "ONBUILD" => {
                        return Err(BuildError::Step(
                            "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into(),
                        ))
                    }
                    "FROM" | "MAINTAINER" => {
                        return Err(BuildError::Step(format!(
                            "{kw} isn't allowed as an ONBUILD trigger"
                        )))
                    }
                    _ => {}
                }
                let mut list = str_list(st.config.get("OnBuild"));
                list.push(trigger.to_owned());
                st.config.insert("OnBuild".into(), json!(list));
                created_by = format!("ONBUILD {trigger}");
            }
            "arg" => {
                let decls = plan::arg_decls(&ins.rest, esc, &vars)?;
                let mut text = Vec::new();
                for (name, default) in decls {
                    let given = self
                        .opts
                        .build_args
                        .iter()
                        .rev()
                        .find(|(k, _)| *k == name)
                        .map(|(_, v)| v.clone());
                    let meta = self
                        .plan
                        .meta_values
                        .iter()
                        .rev()
                        .find(|(k, _)| *k == name)
                        .map(|(_, v)| v.clone());
                    let value = match given {
                        Some(Some(v)) => Some(v),
                        _ => default.clone().or(meta),
                    };
                    text.push(match &default {
                        Some(d) => format!("{name}={d}"),
                        None => name.clone(),
                    });
                    used.push(name.clone());
                    st.args.retain(|(k, _)| *k != name);
                    st.args.push((name, value));
                }
                created_by = format!("ARG {}", text.join(" "));
            }
            "from" => {
                return Err(BuildError::Step(
                    "FROM isn't allowed as an ONBUILD trigger".into(),
                ))
            }
            other => return Err(BuildError::Step(format!("unknown instruction: {other}"))),
        }
        let created_by = format!("/bin/sh -c #(nop)  {created_by}");
        self.commit_meta(st, &created_by, &[], out).await
    }

    fn exists(&self) -> impl Fn(&str) -> bool + '_ {
        |id| self.builder.images.resolve(id).is_ok()
    }

    /// The cached image for `key`, announced as dockerd does.
    async fn cached(
        &self,
        st: &mut StageState,
        key: &str,
        created_by: &str,
        out: &Output,
    ) -> Result<bool, BuildError> {
        if self.opts.no_cache {
            return Ok(false);
        }
        let local = self
            .builder
            .cache
            .lookup(key, self.exists())
            .and_then(|id| self.builder.images.resolve(&id).ok())
            .filter(|img| self.cache_from_allows(img));
        let img = match local {
            Some(img) => img,
            None => match self.restore_from_sources(st, created_by).await? {
                Some(img) => {
                    self.builder
                        .cache
                        .store(key, &img.id.to_string(), &st.parent_id(), created_by);
                    img
                }
                None => return Ok(false),
            },
        };
        out.stream(" ---> Using cache\n").await?;
        out.stream(format!(" ---> {}\n", short(&img.id.to_string())))
            .await?;
        self.adopt(st, img);
        Ok(true)
    }

    /// With `--cache-from`, as dockerd's classic builder: a local cache hit
    /// counts only if it is one of those images or an ancestor of one.
    fn cache_from_allows(&self, hit: &Image) -> bool {
        if self.opts.cache_from.is_empty() {
            return true;
        }
        self.opts.cache_from.iter().any(|name| {
            let mut next = self.builder.images.resolve(name).ok();
            // Parent chains are as long as the history; the bound only
            // guards against a corrupt store.
            for _ in 0..10_000 {
                let Some(img) = next else { return false };
                if img.id == hit.id {
                    return true;
                }
                next = img
                    .meta
                    .parent
                    .as_ref()
                    .and_then(|p| self.builder.images.resolve(&p.to_string()).ok());
            }
            false
        })
    }

    /// A step stood for by a `--cache-from` image (as dockerd's classic
    /// builder: the image's history continues this build's and its next
    /// entry was made by the same instruction). Images that are not there
    /// are skipped.
    async fn restore_from_sources(
        &self,
        st: &StageState,
        created_by: &str,
    ) -> Result<Option<Arc<Image>>, BuildError> {
        if self.opts.cache_from.is_empty() {
            return Ok(None);
        }
        let store = self.builder.images.clone();
        let sources = self.opts.cache_from.clone();
        let parent = st.image.clone();
        let config = st.config.clone();
        let created_by = created_by.to_owned();
        tokio::task::spawn_blocking(move || {
            for name in &sources {
                let Ok(source) = store.resolve(name) else {
                    tracing::debug!(%name, "cache source not found, skipped");
                    continue;
                };
                match store.restore_from_cache_source(
                    parent.as_deref(),
                    &source,
                    &config,
                    &created_by,
                ) {
                    Ok(Some(img)) => return Ok(Some(img)),
                    Ok(None) => {}
                    Err(e) => return Err(step_err(e)),
                }
            }
            Ok(None)
        })
        .await
        .map_err(|e| BuildError::Internal(e.to_string()))?
    }

    fn adopt(&self, st: &mut StageState, img: Arc<Image>) {
        if let Value::Object(m) = img.container_config() {
            st.config = m;
        }
        st.image = Some(img);
    }

    fn options(&self, st: &StageState, created_by: &str) -> CommitOptions {
        CommitOptions {
            parent: st.image.as_ref().map(|i| i.id.clone()),
            config: st.config.clone(),
            changes: Vec::new(),
            author: st.author.clone(),
            comment: String::new(),
            created_by: created_by.to_owned(),
            reference: None,
        }
    }

    /// A config-only step (cache key: parent, resulting config, text).
    async fn commit_meta(
        &self,
        st: &mut StageState,
        created_by: &str,
        extra: &[&str],
        out: &Output,
    ) -> Result<(), BuildError> {
        let parent = st.parent_id();
        let config = serde_json::to_string(&st.config).unwrap_or_default();
        let mut parts = vec![
            parent.as_str(),
            "meta",
            config.as_str(),
            st.author.as_str(),
            created_by,
        ];
        parts.extend_from_slice(extra);
        let key = cache::key(&parts);
        if self.cached(st, &key, created_by, out).await? {
            return Ok(());
        }
        let opts = self.options(st, created_by);
        let store = self.builder.images.clone();
        let img = tokio::task::spawn_blocking(move || store.create_config_only(&opts))
            .await
            .map_err(|e| BuildError::Internal(e.to_string()))?
            .map_err(step_err)?;
        self.finish_step(st, img, &key, &parent, created_by, out)
            .await
    }

    async fn finish_step(
        &self,
        st: &mut StageState,
        img: Arc<Image>,
        key: &str,
        parent: &str,
        created_by: &str,
        out: &Output,
    ) -> Result<(), BuildError> {
        self.builder
            .cache
            .store(key, &img.id.to_string(), parent, created_by);
        out.stream(format!(" ---> {}\n", short(&img.id.to_string())))
            .await?;
        self.adopt(st, img);
        Ok(())
    }

    async fn run_step(
        &self,
        st: &mut StageState,
        ins: &Instruction,
        out: &Output,
        used: &mut Vec<String>,
    ) -> Result<(), BuildError> {
        let (flags, rest) = split_flags(&ins.rest);
        let mut network = self.opts.network_mode.clone();
        for (k, v) in flags {
            match k.as_str() {
                "network" => {
                    network = match v.as_str() {
                        "default" => String::new(),
                        "none" | "host" => v,
                        other => {
                            return Err(BuildError::Step(format!(
                                "unsupported network mode {other}"
                            )))
                        }
                    }
                }
                other => return Err(BuildError::Step(format!("Unknown flag: {other}"))),
            }
        }
        let mut cmd = match words::json_array(&rest) {
            Some(l) if !l.is_empty() => l,
            _ => {
                let mut s = st.shell();
                s.push(rest.clone());
                s
            }
        };
        // Heredocs: the first one is the script for the shell.
        if let Some(h) = ins.heredocs.first() {
            let mut s = st.shell();
            let content = h.content.clone();
            s.push(content);
            cmd = s;
        }
        let Some(image) = st.image.clone() else {
            return Err(BuildError::Step(
                "RUN needs a base image: FROM scratch has no shell".into(),
            ));
        };
        let args = st.run_args();
        used.extend(args.iter().map(|(k, _)| k.clone()));
        let created_by = if args.is_empty() {
            cmd.join(" ")
        } else {
            let a: Vec<String> = args.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("|{} {} {}", args.len(), a.join(" "), cmd.join(" "))
        };
        let parent = st.parent_id();
        let cmd_json = serde_json::to_string(&cmd).unwrap_or_default();
        let key = cache::key(&[&parent, "run", &cmd_json, &created_by, &network]);
        if self.cached(st, &key, &created_by, out).await? {
            return Ok(());
        }
        let mut env = st.env();
        env.extend(args.iter().map(|(k, v)| format!("{k}={v}")));
        // Proxy args need no ARG and stay out of the history (as dockerd).
        for (k, v) in &self.opts.build_args {
            if let Some(v) = v.as_ref().filter(|_| is_predefined_arg(k)) {
                if !env.iter().any(|e| e.split('=').next() == Some(k.as_str())) {
                    env.push(format!("{k}={v}"));
                }
            }
        }
        let spec = RunSpec {
            image: image.id.to_string(),
            cmd,
            env,
            working_dir: st.working_dir(),
            user: st
                .config
                .get("User")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            network_mode: network,
            extra_hosts: self.opts.extra_hosts.clone(),
            resources: self.opts.resources.clone(),
        };
        let container = run::run(&self.builder.containers, spec, out).await?;
        let upper = container.upper_dir();
        let opts = self.options(st, &created_by);
        let store = self.builder.images.clone();
        let tmp = self.ctx.scratch()?;
        let committed =
            tokio::task::spawn_blocking(move || commit_upper(&store, &upper, &tmp, &opts))
                .await
                .map_err(|e| BuildError::Internal(e.to_string()));
        out.stream(format!(
            "Removing intermediate container {}\n",
            container.short()
        ))
        .await?;
        container.remove().await;
        let img = committed??;
        self.finish_step(st, img, &key, &parent, &created_by, out)
            .await
    }

    async fn workdir_step(
        &self,
        st: &mut StageState,
        ins: &Instruction,
        out: &Output,
    ) -> Result<(), BuildError> {
        let w = words::word(ins.rest.trim(), self.escape(), &st.vars())?;
        if w.value.is_empty() {
            return Err(BuildError::Step(
                "WORKDIR requires exactly one argument".into(),
            ));
        }
        let joined = if w.value.starts_with('/') {
            w.value.clone()
        } else {
            format!("{}/{}", st.working_dir(), w.value)
        };
        let path = format!("/{}", super::ignore::clean(&joined));
        st.config.insert("WorkingDir".into(), json!(path));
        let created_by = format!("/bin/sh -c #(nop) WORKDIR {path}");
        let parent = st.parent_id();
        let config = serde_json::to_string(&st.config).unwrap_or_default();
        let key = cache::key(&[&parent, "workdir", &config, &st.author, &created_by]);
        if self.cached(st, &key, &created_by, out).await? {
            return Ok(());
        }
        let opts = self.options(st, &created_by);
        let layers = self.layers(st)?;
        let store = self.builder.images.clone();
        let dir = self.step_dir();
        let img = tokio::task::spawn_blocking(move || -> Result<Arc<Image>, BuildError> {
            let root = super::stepfs::StepRoot::mount(dir.join("root"), &layers)?;
            {
                let view = root.view()?;
                let entry = vec![(path.trim_start_matches('/').to_owned(), 0o755u32)];
                make_dirs(&view, &entry)?;
            }
            root.unmount()?;
            commit_upper(&store, &root.upper(), &dir, &opts)
        })
        .await
        .map_err(|e| BuildError::Internal(e.to_string()))??;
        self.finish_step(st, img, &key, &parent, &created_by, out)
            .await
    }

    fn layers(&self, st: &StageState) -> Result<Vec<std::path::PathBuf>, BuildError> {
        match &st.image {
            Some(img) => Ok(self
                .builder
                .images
                .layers_of(img)
                .map_err(step_err)?
                .into_iter()
                .map(|l| l.diff_dir)
                .collect()),
            None => Ok(Vec::new()),
        }
    }

    fn step_dir(&self) -> std::path::PathBuf {
        self.ctx
            .dir
            .join(format!("step-{}", hex::encode(rand::random::<[u8; 6]>())))
    }

    async fn copy_step(
        &self,
        st: &mut StageState,
        ins: &Instruction,
        out: &Output,
        ignore: &super::ignore::Ignore,
        results: &BTreeMap<usize, Option<Arc<Image>>>,
    ) -> Result<(), BuildError> {
        let esc = self.escape();
        let is_add = ins.keyword == "add";
        let instr = if is_add { "ADD" } else { "COPY" };
        let (flags, rest) = split_flags(&ins.rest);
        let (mut from, mut chown, mut chmod, mut checksum) = (None, None, None, None);
        for (k, v) in flags {
            match k.as_str() {
                "from" if !is_add => from = Some(v),
                "chown" => chown = Some(v),
                "chmod" => {
                    chmod = Some(
                        u32::from_str_radix(&v, 8)
                            .ok()
                            .filter(|m| *m <= 0o7777)
                            .ok_or_else(|| {
                                BuildError::Step(format!("invalid chmod parameter: {v}"))
                            })?,
                    )
                }
                "link" => {}
                "checksum" if is_add => checksum = Some(v),
                other => return Err(BuildError::Step(format!("Unknown flag: {other}"))),
            }
        }
        let vars = st.vars();
        let mut args = match words::json_array(&rest) {
            Some(l) => l
                .iter()
                .map(|a| words::word(a, esc, &vars).map(|w| w.value))
                .collect::<Result<Vec<_>, _>>()?,
            None => words::words(&rest, esc, &vars)?.value,
        };
        let chown = match chown {
            Some(c) => Some(words::word(&c, esc, &vars)?.value),
            None => None,
        };
        // Heredoc sources become the files of a small context of their own.
        let mut heredoc_dir = None;
        if !ins.heredocs.is_empty() {
            if from.is_some() {
                return Err(BuildError::Step(format!(
                    "{instr} --from cannot be combined with heredocs"
                )));
            }
            let dir = self.step_dir().join("heredoc");
            std::fs::create_dir_all(&dir).map_err(step_err)?;
            for h in &ins.heredocs {
                let content = if h.expand {
                    words::heredoc_text(&h.content, esc, &vars)?.value
                } else {
                    h.content.clone()
                };
                std::fs::write(dir.join(&h.name), content).map_err(step_err)?;
            }
            for a in args.iter_mut() {
                if let Some((name, _, _)) = parser::heredoc_markers(a).into_iter().next() {
                    *a = name;
                }
            }
            heredoc_dir = Some(dir);
        }
        if args.len() < 2 {
            return Err(BuildError::Step(format!(
                "{instr} requires at least two arguments, but only one was provided. Destination could not be determined."
            )));
        }
        let dest_raw = args.pop().unwrap_or_default();
        let from_url = args.iter().any(|a| super::remote::is_url(a));
        if from_url {
            if !is_add {
                return Err(BuildError::Step(
                    "source can't be a URL for COPY".to_owned(),
                ));
            }
            if from.is_some()
                || heredoc_dir.is_some()
                || !args.iter().all(|a| super::remote::is_url(a))
            {
                return Err(BuildError::Step(
                    "ADD of URLs cannot be combined with local, heredoc or --from sources in one instruction".to_owned(),
                ));
            }
            let dir = self.step_dir().join("url");
            std::fs::create_dir_all(&dir).map_err(step_err)?;
            let dest_is_dir = dest_raw.ends_with('/') || args.len() > 1;
            for a in args.iter_mut() {
                let name = match url_file_name(a) {
                    Some(n) => n,
                    None if !dest_is_dir => "download".to_owned(),
                    None => {
                        return Err(BuildError::Step(format!(
                            "cannot determine filename from url: {a}"
                        )))
                    }
                };
                let file = dir.join(&name);
                let got = super::remote::download(a, &file).await?;
                if let Some(want) = &checksum {
                    verify_checksum(&file, want)?;
                }
                set_download_attrs(&file, got.modified).map_err(step_err)?;
                *a = name;
            }
            heredoc_dir = Some(dir);
        } else if checksum.is_some() {
            return Err(BuildError::Step(
                "checksum can't be specified for non-HTTP(S) sources".to_owned(),
            ));
        }
        let mut dest = if dest_raw.starts_with('/') {
            dest_raw.clone()
        } else {
            let wd = st.working_dir();
            format!(
                "{}/{}",
                if wd.is_empty() {
                    ""
                } else {
                    wd.trim_end_matches('/')
                },
                dest_raw
            )
        };
        let dir_dest = dest_raw.ends_with('/') || dest_raw == "." || dest_raw.ends_with("/.");
        if dir_dest && !dest.ends_with('/') {
            dest.push('/');
        }
        // The source: the context, an earlier stage or an image.
        let source_image = match &from {
            None => None,
            Some(name) => match self.plan.stage_index(name) {
                Some(j) => match results.get(&j) {
                    Some(img) => Some(img.clone()),
                    None => {
                        return Err(BuildError::Step(format!(
                        "invalid from flag value {name}: stage {name} is not built before this one"
                    )))
                    }
                },
                None => Some(Some(self.builder.images.resolve(name).map_err(|e| {
                    BuildError::Step(format!("invalid from flag value {name}: {e}"))
                })?)),
            },
        };
        let source_layers = match &source_image {
            Some(Some(img)) => Some(
                self.builder
                    .images
                    .layers_of(img)
                    .map_err(step_err)?
                    .into_iter()
                    .map(|l| l.diff_dir)
                    .collect::<Vec<_>>(),
            ),
            Some(None) => Some(Vec::new()),
            None => None,
        };
        let layers = self.layers(st)?;
        let dir = self.step_dir();
        let ctx_view_dir = heredoc_dir.clone().unwrap_or_else(|| self.ctx.ctx());
        let from_context = heredoc_dir.is_none();
        let ignore = ignore.clone();
        let instr_s = instr.to_owned();
        let dest_for_blocking = dest.clone();
        // Plan (and checksum) first. The target is mounted only where the
        // plan must see it (a single file's destination, --chown's names):
        // a cache hit of a directory copy then costs no mount at all.
        let prepared = tokio::task::spawn_blocking(move || -> Result<_, BuildError> {
            let mut root: Option<StepRoot> = None;
            let mounted = |root: &mut Option<StepRoot>| -> Result<FsView, BuildError> {
                if root.is_none() {
                    *root = Some(StepRoot::mount(dir.join("root"), &layers)?);
                }
                match root {
                    Some(r) => r.view(),
                    None => Err(BuildError::Internal("build step root not mounted".into())),
                }
            };
            let src_root = match &source_layers {
                Some(l) => Some(super::stepfs::StepRoot::mount(dir.join("src"), l)?),
                None => None,
            };
            let src_view = match &src_root {
                Some(r) => r.view()?,
                None => crate::containers::archive::FsView::new(vec![
                    crate::containers::archive::ViewMount {
                        destination: "/".into(),
                        source: ctx_view_dir,
                        read_only: true,
                    },
                ])
                .map_err(step_err)?,
            };
            let req = CopyRequest {
                instruction: &instr_s,
                sources: &args,
                dest: &dest_for_blocking,
                ignore: if source_layers.is_none() && from_context {
                    Some(&ignore)
                } else {
                    None
                },
                chmod,
                extract_archives: is_add && !from_url,
            };
            let plan = copy::plan(
                &src_view,
                &mut |dest| Ok(copy::is_dir_in(&mounted(&mut root)?, dest)),
                &req,
            )?;
            let owner = match &chown {
                Some(c) => copy::lookup_owner(&mounted(&mut root)?, c)?,
                None => (0, 0),
            };
            drop(src_view);
            Ok((plan, owner, root, layers, src_root, dir))
        })
        .await
        .map_err(|e| BuildError::Internal(e.to_string()))??;
        let (cplan, owner, root, layers, src_root, dir) = prepared;
        let created_by = format!("/bin/sh -c #(nop) {instr} {} in {dest_raw} ", cplan.summary);
        let parent = st.parent_id();
        let key = cache::key(&[
            &parent,
            "copy",
            &created_by,
            &dest,
            &format!("{owner:?}"),
            &format!("{chmod:?}"),
        ]);
        if self.cached(st, &key, &created_by, out).await? {
            return Ok(());
        }
        let opts = self.options(st, &created_by);
        let store = self.builder.images.clone();
        let ctx_dir = heredoc_dir.unwrap_or_else(|| self.ctx.ctx());
        let img = tokio::task::spawn_blocking(move || -> Result<Arc<Image>, BuildError> {
            let root = match root {
                Some(r) => r,
                None => StepRoot::mount(dir.join("root"), &layers)?,
            };
            {
                let src_dir = match &src_root {
                    Some(r) => r.merged(),
                    None => ctx_dir,
                };
                let target = root.view()?;
                cplan.apply(&src_dir, &target, owner, chmod)?;
            }
            drop(src_root);
            root.unmount()?;
            commit_upper(&store, &root.upper(), &dir, &opts)
        })
        .await
        .map_err(|e| BuildError::Internal(e.to_string()))??;
        self.finish_step(st, img, &key, &parent, &created_by, out)
            .await
    }
}

/// Creates directories (mkdir -p, root-owned) in a step root.
fn make_dirs(
    view: &crate::containers::archive::FsView,
    dirs: &[(String, u32)],
) -> Result<(), BuildError> {
    let mut buf = Vec::new();
    {
        let mut tar = tar::Builder::new(&mut buf);
        for (d, mode) in dirs {
            if d.is_empty() {
                continue;
            }
            // Existing directories are left as they are.
            if view
                .resolve(format!("/{d}").as_bytes(), true)
                .ok()
                .and_then(|p| view.lstat(&p).ok().flatten())
                .is_some()
            {
                continue;
            }
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(*mode);
            h.set_size(0);
            h.set_mtime(chrono::Utc::now().timestamp().max(0) as u64);
            tar.append_data(&mut h, format!("{d}/"), std::io::empty())
                .map_err(step_err)?;
        }
        tar.finish().map_err(step_err)?;
    }
    let root = crate::containers::archive::prepare_extract(view, "/", false).map_err(step_err)?;
    crate::containers::archive::extract(
        view,
        &root,
        &buf[..],
        crate::containers::archive::ExtractOptions {
            no_overwrite_dir_non_dir: false,
            chown: Some((0, 0)),
        },
    )
    .map_err(step_err)
}

/// The image for a step whose files are in `upper`: a new layer, or a
/// config-only child when nothing changed.
fn commit_upper(
    store: &berth_images::ImageStore,
    upper: &std::path::Path,
    tmp: &std::path::Path,
    opts: &CommitOptions,
) -> Result<Arc<Image>, BuildError> {
    let empty = std::fs::read_dir(upper)
        .map(|mut d| d.next().is_none())
        .unwrap_or(true);
    if empty {
        return store.create_config_only(opts).map_err(step_err);
    }
    let path = tmp.join(format!(
        "diff-{}.tar",
        hex::encode(rand::random::<[u8; 6]>())
    ));
    let file = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(step_err)?;
    let _ = std::fs::remove_file(&path);
    let mut file = berth_images::layer::diff::write_diff(upper, file).map_err(step_err)?;
    file.flush().map_err(step_err)?;
    file.seek(SeekFrom::Start(0)).map_err(step_err)?;
    store.create_from_diff(file, opts).map_err(step_err)
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Proxy variables every build accepts without a warning.
fn is_predefined_arg(name: &str) -> bool {
    matches!(
        name.to_ascii_uppercase().as_str(),
        "HTTP_PROXY" | "HTTPS_PROXY" | "FTP_PROXY" | "NO_PROXY" | "ALL_PROXY"
    )
}

/// HEALTHCHECK [options] CMD ... | NONE into the config; returns dockerd's
/// history text.
fn healthcheck(config: &mut Map<String, Value>, rest: &str) -> Result<String, BuildError> {
    let (flags, rest) = split_flags(rest);
    let mut hc = Map::new();
    let mut durations = [
        ("interval", 0i64),
        ("timeout", 0),
        ("start-period", 0),
        ("start-interval", 0),
    ];
    let mut retries = 0i64;
    for (k, v) in flags {
        if k == "retries" {
            retries = v
                .parse()
                .map_err(|_| BuildError::Step(format!("invalid value for retries: {v}")))?;
            continue;
        }
        let Some(slot) = durations.iter_mut().find(|(n, _)| *n == k) else {
            return Err(BuildError::Step(format!("Unknown flag: {k}")));
        };
        slot.1 = parse_duration(&v)
            .ok_or_else(|| BuildError::Step(format!("invalid duration for --{k}: {v}")))?;
    }
    let mut it = rest.trim().splitn(2, char::is_whitespace);
    let kind = it.next().unwrap_or("").to_ascii_uppercase();
    let args = it.next().unwrap_or("").trim();
    let test: Vec<String> = match kind.as_str() {
        "NONE" => vec!["NONE".into()],
        "CMD" => match words::json_array(args) {
            Some(mut l) => {
                l.insert(0, "CMD".into());
                l
            }
            None => vec!["CMD-SHELL".into(), args.to_owned()],
        },
        _ => {
            return Err(BuildError::Step(
                "Unknown type \"".to_string() + &kind + "\" in HEALTHCHECK (try CMD)",
            ))
        }
    };
    hc.insert("Test".into(), json!(test));
    for (name, key) in [
        ("interval", "Interval"),
        ("timeout", "Timeout"),
        ("start-period", "StartPeriod"),
        ("start-interval", "StartInterval"),
    ] {
        let v = durations
            .iter()
            .find(|(n, _)| *n == name)
            .map(|d| d.1)
            .unwrap_or(0);
        if v != 0 {
            hc.insert(key.into(), json!(v));
        }
    }
    if retries != 0 {
        hc.insert("Retries".into(), json!(retries));
    }
    let fmt = |ns: i64| go_duration(ns);
    let text = format!(
        "&{{{} \"{}\" \"{}\" \"{}\" '\\x{:02x}'}}",
        go_quoted(&test),
        fmt(durations[0].1),
        fmt(durations[1].1),
        fmt(durations[2].1),
        retries
    );
    config.insert("Healthcheck".into(), Value::Object(hc));
    Ok(text)
}

/// Go duration strings (`1h2m3.5s`, `300ms`) to nanoseconds.
fn parse_duration(s: &str) -> Option<i64> {
    let mut total = 0f64;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    if s.is_empty() {
        return None;
    }
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        while let Some(&n) = chars.peek() {
            if n.is_ascii_digit() || n == '.' {
                break;
            }
            unit.push(n);
            chars.next();
        }
        let v: f64 = num.parse().ok()?;
        num.clear();
        let mult = match unit.as_str() {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += v * mult;
    }
    if !num.is_empty() {
        if num == "0" {
            return Some(0);
        }
        return None;
    }
    Some(total as i64)
}

fn go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let secs = ns as f64 / 1e9;
    if ns % 1_000_000_000 == 0 {
        let s = ns / 1_000_000_000;
        let (h, m, s) = (s / 3600, (s % 3600) / 60, s % 60);
        let mut out = String::new();
        if h > 0 {
            out.push_str(&format!("{h}h"));
        }
        if h > 0 || m > 0 {
            out.push_str(&format!("{m}m"));
        }
        out.push_str(&format!("{s}s"));
        return out;
    }
    format!("{secs}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_quoting() {
        assert_eq!(parse_duration("5s"), Some(5_000_000_000));
        assert_eq!(parse_duration("1m30s"), Some(90_000_000_000));
        assert_eq!(parse_duration("300ms"), Some(300_000_000));
        assert_eq!(parse_duration("x"), None);
        assert_eq!(go_duration(5_000_000_000), "5s");
        assert_eq!(go_duration(90_000_000_000), "1m30s");
        assert_eq!(
            go_quoted(&["/bin/sh".into(), "-c".into(), "echo $V".into()]),
            "[\"/bin/sh\" \"-c\" \"echo $V\"]"
        );
        let mut c = Map::new();
        let t = healthcheck(&mut c, "--interval=5s CMD true").unwrap();
        assert_eq!(
            t,
            "&{[\"CMD-SHELL\" \"true\"] \"5s\" \"0s\" \"0s\" '\\x00'}"
        );
        assert_eq!(c["Healthcheck"]["Interval"], 5_000_000_000i64);
    }
}

/// The file name an `ADD` of a URL gets: the last segment of its path.
fn url_file_name(url: &str) -> Option<String> {
    let no_query = url.split(['?', '#']).next().unwrap_or(url);
    let after_scheme = no_query
        .split_once("://")
        .map(|(_, r)| r)
        .unwrap_or(no_query);
    let path = after_scheme.split_once('/').map(|(_, p)| p).unwrap_or("");
    let name = path.rsplit('/').next().unwrap_or("");
    (!name.is_empty() && name != "." && name != "..").then(|| name.to_owned())
}

/// `ADD --checksum=sha256:…`: the download must have that digest.
fn verify_checksum(file: &std::path::Path, want: &str) -> Result<(), BuildError> {
    use sha2::{Digest as _, Sha256};
    let Some(hex_want) = want.strip_prefix("sha256:") else {
        return Err(BuildError::Step(format!(
            "unsupported digest algorithm in checksum {want}: only sha256 is"
        )));
    };
    let mut f = std::fs::File::open(file).map_err(step_err)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(step_err)?;
    let got = hex::encode(h.finalize());
    if got != hex_want {
        return Err(BuildError::Step(format!(
            "digest mismatch sha256:{got}: expected {want}"
        )));
    }
    Ok(())
}

/// As dockerd: a downloaded file is 0600 and dated by `Last-Modified`.
fn set_download_attrs(file: &std::path::Path, modified: Option<i64>) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))?;
    if let Some(secs) = modified {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64);
        std::fs::File::options()
            .write(true)
            .open(file)?
            .set_modified(t)?;
    }
    Ok(())
}

#[cfg(test)]
mod url_tests {
    use super::url_file_name;

    #[test]
    fn file_names_of_urls() {
        assert_eq!(
            url_file_name("http://h/a/b.tar.gz?x=1").as_deref(),
            Some("b.tar.gz")
        );
        assert_eq!(url_file_name("https://h:8/f").as_deref(), Some("f"));
        assert_eq!(url_file_name("https://h/"), None);
        assert_eq!(url_file_name("https://h"), None);
    }
}
