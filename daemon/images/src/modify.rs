//! Tag, delete (with dockerd's untag-vs-delete rules and conflicts), prune.

use std::collections::HashSet;
use std::sync::Arc;

use serde::Serialize;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::filters::{self, Filters};
use crate::image::Image;
use crate::reference::{ImageRef, Reference};
use crate::store::{DeleteItem, ImageStore, State};

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PruneReport {
    pub images_deleted: Vec<DeleteItem>,
    pub space_reclaimed: u64,
}

const PRUNE_FILTERS: &[&str] = &["dangling", "label", "label!", "until"];

/// Conflict classes, as dockerd distinguishes them.
const CONFLICT_DEPENDENT_CHILD: u8 = 1;
const CONFLICT_RUNNING_CONTAINER: u8 = 2;
const CONFLICT_ACTIVE_REFERENCE: u8 = 4;
const CONFLICT_STOPPED_CONTAINER: u8 = 8;
const CONFLICT_HARD: u8 = CONFLICT_DEPENDENT_CHILD | CONFLICT_RUNNING_CONTAINER;
const CONFLICT_SOFT: u8 = CONFLICT_ACTIVE_REFERENCE | CONFLICT_STOPPED_CONTAINER;

struct Conflict {
    hard: bool,
    used: bool,
    message: String,
}

impl Conflict {
    fn into_error(self, id: &Digest) -> Error {
        let force = if self.hard {
            "cannot be forced"
        } else {
            "must be forced"
        };
        Error::Conflict(format!(
            "conflict: unable to delete {} ({force}) - {}",
            id.short(),
            self.message
        ))
    }
}

/// Parse `repo` + `tag` as the tag endpoint and import do.
pub fn repo_tag_reference(repo: &str, tag: &str) -> Result<Reference> {
    let r = Reference::parse_normalized(repo)?;
    if r.digest().is_some() {
        return Err(Error::InvalidReference(
            "cannot import digest reference".into(),
        ));
    }
    if tag.is_empty() {
        Ok(r.with_default_tag())
    } else {
        r.with_tag(tag)
    }
}

impl ImageStore {
    /// `POST /images/{name}/tag?repo=&tag=`: point `target` at the image.
    pub fn tag(&self, source: &str, target: &Reference) -> Result<Digest> {
        if target.digest().is_some() {
            return Err(Error::invalid(
                "refusing to create a tag with a digest reference",
            ));
        }
        let parsed = ImageRef::parse(source)?;
        let mut st = self.lock()?;
        let img = Self::resolve_in(&st, source, &parsed)?;
        // Tagging again what the tag already names (a cached rebuild)
        // writes nothing: LastTagTime moves in memory only, so after a
        // restart it says when the tag last changed.
        if st.refs.get(target) == Some(&img.id) {
            Self::touch_last_tag_time(&mut st, &img.id);
        } else {
            st.refs.add(target, &img.id)?;
            self.set_last_tag_time(&mut st, &img.id)?;
        }
        drop(st);
        self.emit("tag", &img.id, &target.familiar());
        Ok(img.id.clone())
    }

    /// `DELETE /images/{name}`: untag, and delete when nothing refers to
    /// the image any more; `prune` also removes untagged parents.
    pub fn delete(&self, name: &str, force: bool, prune: bool) -> Result<Vec<DeleteItem>> {
        self.layers.sync_holds()?;
        let result = self.delete_locked(name, force, prune);
        self.layers.reap()?;
        result
    }

    fn delete_locked(&self, name: &str, force: bool, prune: bool) -> Result<Vec<DeleteItem>> {
        let parsed = ImageRef::parse(name)?;
        let mut st = self.lock()?;
        let img = Self::resolve_in(&st, name, &parsed)?;
        let id = img.id.clone();
        let mut records = Vec::new();
        let mut repo_refs = st.refs.references_to(&id);
        let mut removed_repository_ref = false;

        if !is_id_prefix(&id, name) {
            let named = match &parsed {
                ImageRef::Named(r) => r.clone(),
                ImageRef::Id(_) => return Err(Error::no_such_image(name)),
            };
            if !force && is_single_reference(&repo_refs) {
                if let Some(c) = self.containers_using(&id).first() {
                    return Err(Error::Conflict(format!(
                        "conflict: unable to remove repository reference \"{name}\" (must force) - container {} is using its referenced image {}",
                        short_id(&c.id),
                        id.short()
                    )));
                }
            }
            let key = if named.digest().is_some() {
                named.clone()
            } else {
                named.clone().with_default_tag()
            };
            if st.refs.get(&key) != Some(&id) {
                // Resolved through an ID prefix that looks like a name.
                return self.delete_by_id(&mut st, &img, force, prune, records);
            }
            st.refs.remove(&key)?;
            records.push(DeleteItem::Untagged(key.familiar()));
            self.emit("untag", &id, &id.to_string());
            repo_refs = st.refs.references_to(&id);
            // Removing the last tag of a repository also drops its digests.
            if key.digest().is_none() {
                let same_repo_tag = repo_refs
                    .iter()
                    .any(|r| r.digest().is_none() && r.name() == key.name());
                if !same_repo_tag {
                    let digests: Vec<Reference> = repo_refs
                        .iter()
                        .filter(|r| r.digest().is_some() && r.name() == key.name())
                        .cloned()
                        .collect();
                    for d in &digests {
                        st.refs.remove(d)?;
                        records.push(DeleteItem::Untagged(d.familiar()));
                        self.emit("untag", &id, &id.to_string());
                    }
                    repo_refs = st.refs.references_to(&id);
                }
            }
            if !repo_refs.is_empty() {
                return Ok(records);
            }
            removed_repository_ref = true;
        } else if is_single_reference(&repo_refs) {
            let mut mask = CONFLICT_HARD;
            if !force {
                mask |= CONFLICT_SOFT & !CONFLICT_ACTIVE_REFERENCE;
            }
            if let Some(c) = self.check_conflict(&st, &id, mask) {
                return Err(c.into_error(&id));
            }
            for r in &repo_refs {
                st.refs.remove(r)?;
                records.push(DeleteItem::Untagged(r.familiar()));
                self.emit("untag", &id, &id.to_string());
            }
        }
        self.delete_helper(
            &mut st,
            &id,
            &mut records,
            force,
            prune,
            removed_repository_ref,
        )?;
        Ok(records)
    }

    fn delete_by_id(
        &self,
        st: &mut State,
        img: &Arc<Image>,
        force: bool,
        prune: bool,
        mut records: Vec<DeleteItem>,
    ) -> Result<Vec<DeleteItem>> {
        let repo_refs = st.refs.references_to(&img.id);
        if is_single_reference(&repo_refs) {
            let mut mask = CONFLICT_HARD;
            if !force {
                mask |= CONFLICT_SOFT & !CONFLICT_ACTIVE_REFERENCE;
            }
            if let Some(c) = self.check_conflict(st, &img.id, mask) {
                return Err(c.into_error(&img.id));
            }
            for r in &repo_refs {
                st.refs.remove(r)?;
                records.push(DeleteItem::Untagged(r.familiar()));
                self.emit("untag", &img.id, &img.id.to_string());
            }
        }
        self.delete_helper(st, &img.id, &mut records, force, prune, false)?;
        Ok(records)
    }

    fn delete_helper(
        &self,
        st: &mut State,
        id: &Digest,
        records: &mut Vec<DeleteItem>,
        force: bool,
        prune: bool,
        quiet: bool,
    ) -> Result<()> {
        let mut mask = CONFLICT_HARD;
        if !force {
            mask |= CONFLICT_SOFT;
        }
        if let Some(c) = self.check_conflict(st, id, mask) {
            let dangling =
                st.refs.references_to(id).is_empty() && Self::children_in(st, id).is_empty();
            if quiet && (!dangling || c.used) {
                return Ok(());
            }
            return Err(c.into_error(id));
        }
        let parent = st.images.get(id).and_then(|i| i.meta.parent.clone());
        let refs = st.refs.references_to(id);
        if !refs.is_empty() {
            st.refs.remove_all(&refs)?;
            for r in &refs {
                records.push(DeleteItem::Untagged(r.familiar()));
                self.emit("untag", id, &id.to_string());
            }
        }
        let removed_layers = self.remove_image(st, id)?;
        self.emit("delete", id, &id.to_string());
        records.push(DeleteItem::Deleted(id.to_string()));
        for l in removed_layers {
            records.push(DeleteItem::Deleted(l.to_string()));
        }
        match parent {
            Some(p) if prune && st.images.contains_key(&p) => {
                self.delete_helper(st, &p, records, false, true, true)
            }
            _ => Ok(()),
        }
    }

    fn check_conflict(&self, st: &State, id: &Digest, mask: u8) -> Option<Conflict> {
        if mask & CONFLICT_DEPENDENT_CHILD != 0 && !Self::children_in(st, id).is_empty() {
            return Some(Conflict {
                hard: true,
                used: false,
                message: "image has dependent child images".into(),
            });
        }
        let users = if mask & (CONFLICT_RUNNING_CONTAINER | CONFLICT_STOPPED_CONTAINER) != 0 {
            self.containers_using(id)
        } else {
            Vec::new()
        };
        if mask & CONFLICT_RUNNING_CONTAINER != 0 {
            if let Some(c) = users.iter().find(|c| c.running) {
                return Some(Conflict {
                    hard: true,
                    used: true,
                    message: format!(
                        "image is being used by running container {}",
                        short_id(&c.id)
                    ),
                });
            }
        }
        if mask & CONFLICT_ACTIVE_REFERENCE != 0 && !st.refs.references_to(id).is_empty() {
            return Some(Conflict {
                hard: false,
                used: false,
                message: "image is referenced in multiple repositories".into(),
            });
        }
        if mask & CONFLICT_STOPPED_CONTAINER != 0 {
            if let Some(c) = users.iter().find(|c| !c.running) {
                return Some(Conflict {
                    hard: false,
                    used: true,
                    message: format!(
                        "image is being used by stopped container {}",
                        short_id(&c.id)
                    ),
                });
            }
        }
        None
    }

    /// `POST /images/prune`: dangling images by default, every unused image
    /// with `dangling=false`; `until` and `label`/`label!` narrow it.
    pub fn prune(&self, f: &Filters) -> Result<PruneReport> {
        self.layers.sync_holds()?;
        let result = self.prune_locked(f);
        self.layers.reap()?;
        result
    }

    fn prune_locked(&self, f: &Filters) -> Result<PruneReport> {
        filters::validate(f, PRUNE_FILTERS)?;
        let dangling_only = filters::bool_filter(f, "dangling")?.unwrap_or(true);
        let until = match f.get("until").and_then(|v| v.first()) {
            Some(u) => Some(filters::parse_until(u)?),
            None => None,
        };
        let labels = f.get("label").cloned().unwrap_or_default();
        let not_labels = f.get("label!").cloned().unwrap_or_default();
        let mut report = PruneReport::default();
        let mut st = self.lock()?;
        let sizes_before: u64 = self.layers.list()?.iter().map(|l| l.record.size).sum();
        let candidates: Vec<Arc<Image>> = st.images.values().cloned().collect();
        for img in candidates {
            if !st.images.contains_key(&img.id) {
                continue;
            }
            let refs = st.refs.references_to(&img.id);
            if dangling_only && !refs.is_empty() {
                continue;
            }
            if !Self::children_in(&st, &img.id).is_empty() {
                continue;
            }
            if !self.containers_using(&img.id).is_empty() {
                continue;
            }
            if let Some(u) = until {
                if !matches!(img.created, Some(c) if c < u) {
                    continue;
                }
            }
            let l = img.labels();
            if !filters::labels_match(&labels, &l) {
                continue;
            }
            if !not_labels.is_empty()
                && not_labels
                    .iter()
                    .any(|w| filters::labels_match(std::slice::from_ref(w), &l))
            {
                continue;
            }
            let mut records = Vec::new();
            match self.delete_helper(&mut st, &img.id, &mut records, true, true, false) {
                Ok(()) => report.images_deleted.extend(records),
                Err(Error::Conflict(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        let sizes_after: u64 = self.layers.list()?.iter().map(|l| l.record.size).sum();
        report.space_reclaimed = sizes_before.saturating_sub(sizes_after);
        Ok(report)
    }
}

fn short_id(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    id.get(..12).unwrap_or(id)
}

fn is_id_prefix(id: &Digest, s: &str) -> bool {
    let hex = s.strip_prefix("sha256:").unwrap_or(s);
    !hex.is_empty() && id.hex().starts_with(hex)
}

/// At most one tag, plus digest references of that same repository.
fn is_single_reference(refs: &[Reference]) -> bool {
    if refs.len() <= 1 {
        return refs.len() == 1;
    }
    let mut single: Option<&Reference> = None;
    let mut canonical: HashSet<String> = HashSet::new();
    for r in refs {
        if r.digest().is_some() {
            canonical.insert(r.name());
        } else if single.is_none() {
            single = Some(r);
        } else {
            return false;
        }
    }
    let single = single.unwrap_or(&refs[0]);
    canonical.len() == 1 && canonical.contains(&single.name())
}
