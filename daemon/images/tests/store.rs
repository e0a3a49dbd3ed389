//! The image store as a library: commit on top of an image, delete rules
//! with parents and container users, crash leftovers cleaned at open.

use std::fs;
use std::io::Write;
use std::sync::Arc;

use berth_images::import::{CommitOptions, ImportOptions};
use berth_images::{
    ContainerUse, DeleteItem, Digest, ErrorKind, ImageStore, ImageUsage, Reference,
};

fn tar_with(files: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, name, data.as_bytes()).unwrap();
    }
    b.into_inner().unwrap()
}

fn reference(s: &str) -> Option<Reference> {
    Some(Reference::parse_normalized(s).unwrap().with_default_tag())
}

fn import(store: &ImageStore, files: &[(&str, &str)], name: &str) -> Digest {
    let opts = ImportOptions {
        reference: reference(name),
        changes: vec![r#"CMD ["sh"]"#.into()],
        ..Default::default()
    };
    store
        .import(&tar_with(files)[..], &opts)
        .unwrap()
        .id
        .clone()
}

struct Users(Vec<(Digest, ContainerUse)>);

impl ImageUsage for Users {
    fn containers_using(&self, image: &Digest) -> Vec<ContainerUse> {
        self.0
            .iter()
            .filter(|(d, _)| d == image)
            .map(|(_, c)| c.clone())
            .collect()
    }
}

#[test]
fn commit_builds_on_the_parent_and_delete_respects_children() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let base = import(&store, &[("etc/base", "1")], "base:1");
    let mut config = serde_json::Map::new();
    config.insert("Cmd".into(), serde_json::json!(["echo", "child"]));
    let child = store
        .create_from_diff(
            &tar_with(&[("etc/child", "2"), ("etc/.wh.base", "")])[..],
            &CommitOptions {
                parent: Some(base.clone()),
                config,
                created_by: "sh -c make".into(),
                comment: "committed".into(),
                reference: reference("child:1"),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(child.diff_ids.len(), 2);
    assert_eq!(child.meta.parent.as_ref(), Some(&base));
    let layers = store.layers_of(&child).unwrap();
    assert_eq!(layers.len(), 2);
    assert!(layers[0].diff_dir.join("etc/base").is_file());
    assert!(layers[1].diff_dir.join("etc/child").is_file());
    let hist = store.history("child:1").unwrap();
    assert_eq!(hist.len(), 2);
    assert_eq!(hist[0].id, child.id.to_string());
    assert_eq!(hist[0].created_by, "sh -c make");
    assert_eq!(
        hist[1].id,
        base.to_string(),
        "older rows belong to the parent"
    );
    let inspect = store.inspect("child:1").unwrap();
    assert_eq!(inspect["Parent"], base.to_string());
    assert_eq!(
        inspect["Config"]["Cmd"],
        serde_json::json!(["echo", "child"])
    );

    // The parent cannot go while a child depends on it (not even forced).
    store.delete("base:1", false, true).unwrap();
    // Untagged but with a child: an intermediate image, hidden unless `all`.
    let listed = |all| {
        let opts = berth_images::query::ListOptions {
            all,
            ..Default::default()
        };
        store
            .list(&opts)
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(listed(false), vec![child.id.to_string()]);
    assert_eq!(listed(true).len(), 2);
    let err = store.delete(&base.hex()[..12], true, true).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert_eq!(
        err.to_string(),
        format!(
            "conflict: unable to delete {} (cannot be forced) - image has dependent child images",
            &base.hex()[..12]
        )
    );
    // Deleting the child prunes the untagged parent too.
    let items = store.delete("child:1", false, true).unwrap();
    assert!(items.contains(&DeleteItem::Deleted(child.id.to_string())));
    assert!(
        items.contains(&DeleteItem::Deleted(base.to_string())),
        "{items:?}"
    );
    assert!(store.all_images().unwrap().is_empty());
    assert!(store.layer_store().list().unwrap().is_empty());
}

#[test]
fn containers_veto_deletion_and_holds_keep_layers() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let id = import(&store, &[("a", "1")], "used:1");
    let running = ContainerUse {
        id: "c".repeat(64),
        running: true,
    };
    store.set_usage(Arc::new(Users(vec![(id.clone(), running)])));
    let err = store.delete(id.hex(), true, true).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("conflict: unable to delete {} (cannot be forced) - image is being used by running container cccccccccccc", &id.hex()[..12])
    );
    let err = store.delete("used:1", false, true).unwrap_err();
    assert!(
        err.to_string()
            .contains("container cccccccccccc is using its referenced image"),
        "{err}"
    );

    // A stopped container: forcing removes the image; its hold keeps the layers.
    let stopped = ContainerUse {
        id: "d".repeat(64),
        running: false,
    };
    store.set_usage(Arc::new(Users(vec![(id.clone(), stopped)])));
    let img = store.resolve("used:1").unwrap();
    let top = img.top_layer().unwrap().clone();
    store.layer_store().hold(&"d".repeat(64), &top).unwrap();
    let err = store.delete(id.hex(), false, true).unwrap_err();
    assert!(
        err.to_string()
            .contains("(must be forced) - image is being used by stopped container dddddddddddd"),
        "{err}"
    );
    store.delete(id.hex(), true, true).unwrap();
    assert!(
        store.layer_store().get(&top).unwrap().is_some(),
        "held layer survives"
    );
    store.layer_store().release(&"d".repeat(64)).unwrap();
    // Released layers go at the next collection (here: reopening).
    drop(store);
    let store = ImageStore::open(dir.path()).unwrap();
    assert!(store.layer_store().get(&top).unwrap().is_none());
}

#[test]
fn open_cleans_crash_leftovers_and_keeps_images() {
    let dir = tempfile::tempdir().unwrap();
    let (id, top) = {
        let store = ImageStore::open(dir.path()).unwrap();
        let id = import(&store, &[("keep", "1")], "keep:1");
        let top = store
            .resolve("keep:1")
            .unwrap()
            .top_layer()
            .unwrap()
            .clone();
        (id, top)
    };
    // Leftovers of an interrupted unpack, an unreferenced layer, an orphan
    // blob and a temp spool.
    let root = dir.path();
    fs::create_dir_all(root.join("overlay/tmp/layer-123/diff/x")).unwrap();
    let orphan = Digest::of(b"orphan");
    fs::create_dir_all(root.join("overlay/layers").join(orphan.hex()).join("diff")).unwrap();
    let record = serde_json::json!({"chain_id": orphan, "diff_id": orphan, "parent": null, "size": 0, "blob": orphan, "link": &orphan.hex()[..26]});
    fs::write(
        root.join("overlay/layers")
            .join(orphan.hex())
            .join("layer.json"),
        record.to_string(),
    )
    .unwrap();
    let mut f = fs::File::create(
        root.join("image/blobs/sha256")
            .join(Digest::of(b"junk").hex()),
    )
    .unwrap();
    f.write_all(b"junk").unwrap();
    fs::write(root.join("image/tmp/blob-1"), b"partial").unwrap();

    let store = ImageStore::open(root).unwrap();
    assert_eq!(fs::read_dir(root.join("overlay/tmp")).unwrap().count(), 0);
    assert_eq!(fs::read_dir(root.join("image/tmp")).unwrap().count(), 0);
    assert!(!root.join("overlay/layers").join(orphan.hex()).exists());
    assert!(!root
        .join("image/blobs/sha256")
        .join(Digest::of(b"junk").hex())
        .exists());
    assert_eq!(store.resolve("keep:1").unwrap().id, id);
    assert!(store.layer_store().get(&top).unwrap().is_some());
}

#[test]
fn save_then_load_into_a_fresh_store() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let one = ImageStore::open(a.path()).unwrap();
    let id = import(&one, &[("bin/x", "#!/bin/sh\n")], "moved:1");
    let mut archive = Vec::new();
    one.save(&["moved".into()], &mut archive).unwrap();
    let two = ImageStore::open(b.path()).unwrap();
    let mut msgs = Vec::new();
    let report = two
        .load(&archive[..], &mut |p| {
            if let berth_images::load::LoadProgress::Message(m) = p {
                msgs.push(m)
            }
        })
        .unwrap();
    assert_eq!(report.images, vec![id.clone()]);
    assert_eq!(msgs, vec!["Loaded image: moved:1\n".to_string()]);
    let img = two.resolve("moved:1").unwrap();
    let layers = two.layers_of(&img).unwrap();
    assert_eq!(
        fs::read_to_string(layers[0].diff_dir.join("bin/x")).unwrap(),
        "#!/bin/sh\n"
    );
}

#[test]
fn import_accepts_gzip_and_zstd_and_rejects_xz() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let plain = tar_with(&[("hello", "compressed")]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&plain).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(&plain[..], 3).unwrap();
    let mut ids = Vec::new();
    for (data, name) in [(&plain, "plain:1"), (&gz, "gz:1"), (&zst, "zst:1")] {
        let opts = ImportOptions {
            reference: reference(name),
            ..Default::default()
        };
        let img = store.import(&data[..], &opts).unwrap();
        let layers = store.layers_of(&img).unwrap();
        assert_eq!(
            fs::read_to_string(layers[0].diff_dir.join("hello")).unwrap(),
            "compressed"
        );
        ids.push(img.diff_ids[0].clone());
    }
    // Same uncompressed content: same diff ID, one shared layer.
    assert!(ids.iter().all(|d| d == &ids[0]));
    assert_eq!(store.layer_store().list().unwrap().len(), 1);
    let xz = [0xfd, b'7', b'z', b'X', b'Z', 0, 0, 0];
    let err = store
        .import(&xz[..], &ImportOptions::default())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.to_string().contains("xz"), "{err}");
}

/// A docker-archive with one layer of `layer` and a config naming `diff_id`.
fn docker_archive(layer: &[u8], diff_id: &Digest, tag: &str) -> Vec<u8> {
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
    })
    .to_string();
    let config_name = format!("{}.json", Digest::of(config.as_bytes()).hex());
    let layer_name = format!("{}/layer.tar", Digest::of(layer).hex());
    let manifest =
        serde_json::json!([{"Config": config_name, "RepoTags": [tag], "Layers": [layer_name]}])
            .to_string();
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in [
        (&layer_name, layer),
        (&config_name, config.as_bytes()),
        (&"manifest.json".to_string(), manifest.as_bytes()),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, data).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn big_layers_are_unpacked_while_streaming_and_still_verified() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let big: String = (0..200_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let layer = tar_with(&[("big", big.as_str()), ("small", "s")]);
    assert!(layer.len() > 64 * 1024, "large enough to be staged");
    let diff_id = Digest::of(&layer);

    let good = docker_archive(&layer, &diff_id, "big:1");
    let report = store.load(&good[..], &mut |_| {}).unwrap();
    let img = store.resolve("big:1").unwrap();
    assert_eq!(report.images, vec![img.id.clone()]);
    let layers = store.layers_of(&img).unwrap();
    assert_eq!(layers[0].record.diff_id, diff_id);
    assert_eq!(layers[0].record.tar_size, Some(layer.len() as u64));
    assert_eq!(
        fs::read_to_string(layers[0].diff_dir.join("big")).unwrap(),
        big
    );
    let blob = dir.path().join("image/blobs/sha256").join(diff_id.hex());
    assert_eq!(
        fs::read(blob).unwrap(),
        layer,
        "the stored blob is the layer tar"
    );

    // A config naming another diff ID: the staged copy is not used and the
    // load fails with a digest mismatch, leaving nothing behind.
    store.delete("big:1", false, true).unwrap();
    let wrong = Digest::of(b"something else");
    let bad = docker_archive(&layer, &wrong, "bad:1");
    let err = store.load(&bad[..], &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("digest mismatch"), "{err}");
    assert!(store.resolve("bad:1").is_err());
    assert_eq!(
        fs::read_dir(dir.path().join("overlay/tmp"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        fs::read_dir(dir.path().join("image/tmp")).unwrap().count(),
        0
    );
    assert!(store.layer_store().list().unwrap().is_empty());
}
