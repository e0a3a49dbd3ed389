//! Checks on a test daemon's image store as it lies on disk
//! (`<data-root>/image` and `<data-root>/overlay`): nothing half done is
//! visible and nothing unreachable is kept.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

fn names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

fn json(p: &Path) -> serde_json::Value {
    let data = fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
    serde_json::from_slice(&data).unwrap_or_else(|e| panic!("parse {}: {e}", p.display()))
}

/// Fails unless the store is consistent and holds nothing unreachable:
/// no temp files; every image record has its config blob, every layer of
/// its chain and no unfinished tags; every tag names an image; every
/// layer is in an image's chain or held by a container; every blob is an
/// image config or a layer's blob; every short link resolves.
#[track_caller]
pub fn assert_consistent(data_root: &Path) {
    let image = data_root.join("image");
    let overlay = data_root.join("overlay");
    for tmp in [image.join("tmp"), overlay.join("tmp")] {
        assert_eq!(names(&tmp), BTreeSet::new(), "{} not empty", tmp.display());
    }
    let blobs = names(&image.join("blobs/sha256"));
    // Layers by (parent chain, diff ID).
    let mut layers: BTreeMap<(String, String), (String, String)> = BTreeMap::new();
    let mut parents: BTreeMap<String, String> = BTreeMap::new();
    for chain in names(&overlay.join("layers")) {
        let rec = json(&overlay.join("layers").join(&chain).join("layer.json"));
        let s = |k: &str| rec[k].as_str().unwrap_or("").to_string();
        assert_eq!(s("chain_id"), format!("sha256:{chain}"), "layer {chain}");
        layers.insert((s("parent"), s("diff_id")), (s("chain_id"), s("blob")));
        parents.insert(s("chain_id"), s("parent"));
    }
    let mut needed_layers: BTreeSet<String> = BTreeSet::new();
    let mut needed_blobs: BTreeSet<String> = BTreeSet::new();
    let mut images = BTreeSet::new();
    for rec in names(&image.join("images")) {
        let Some(hex) = rec.strip_suffix(".json") else {
            panic!("stray file images/{rec}");
        };
        images.insert(format!("sha256:{hex}"));
        let meta = json(&image.join("images").join(&rec));
        assert!(
            meta.get("pending_tags").is_none(),
            "image {hex} has unfinished tags at rest: {meta}"
        );
        assert!(blobs.contains(hex), "image {hex} has no config blob");
        needed_blobs.insert(hex.to_string());
        let config = json(&image.join("blobs/sha256").join(hex));
        let mut parent = String::new();
        for diff in config["rootfs"]["diff_ids"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let diff = diff.as_str().unwrap_or("").to_string();
            let Some((chain, blob)) = layers.get(&(parent.clone(), diff.clone())) else {
                panic!("image {hex}: layer {diff} on {parent:?} is missing");
            };
            needed_layers.insert(chain.clone());
            needed_blobs.insert(blob.trim_start_matches("sha256:").to_string());
            parent = chain.clone();
        }
    }
    for hold in names(&overlay.join("holds")) {
        let top = fs::read_to_string(overlay.join("holds").join(&hold)).unwrap_or_default();
        let mut cur = top.trim().to_string();
        while !cur.is_empty() && needed_layers.insert(cur.clone()) {
            cur = parents.get(&cur).cloned().unwrap_or_default();
        }
    }
    let present: BTreeSet<String> = parents.keys().cloned().collect();
    let leaked: Vec<&String> = present.difference(&needed_layers).collect();
    assert!(
        leaked.is_empty(),
        "layers no image or container needs: {leaked:?}"
    );
    for (_, blob) in layers.values() {
        needed_blobs.insert(blob.trim_start_matches("sha256:").to_string());
    }
    let leaked: Vec<&String> = blobs.difference(&needed_blobs).collect();
    assert!(leaked.is_empty(), "blobs nothing refers to: {leaked:?}");
    for link in names(&overlay.join("l")) {
        assert!(
            fs::metadata(overlay.join("l").join(&link)).is_ok(),
            "dangling layer link l/{link}"
        );
    }
    let refs_file = image.join("references.json");
    if refs_file.exists() {
        let refs = json(&refs_file);
        for (r, id) in refs["references"].as_object().into_iter().flatten() {
            let id = id.as_str().unwrap_or("");
            assert!(images.contains(id), "tag {r} names a missing image {id}");
        }
    }
}
