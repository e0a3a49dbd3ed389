//! Layers through `docker load`: whiteouts and opaque directories give the
//! right overlay view; hostile layer tars change nothing outside the store.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_tests::{tarball, workspace_root, Daemon};
use serde_json::{json, Value};

/// Build a docker-archive with tests/py/images_mkarchive.py.
fn make_archive(out: &Path, images: Value) {
    let script = workspace_root().join("tests/py/images_mkarchive.py");
    let spec = json!({"out": out.display().to_string(), "images": images});
    let st = Command::new("python3")
        .arg(&script)
        .arg(spec.to_string())
        .status()
        .expect("python3 is needed to build test archives");
    assert!(st.success(), "building {} failed", out.display());
}

fn file(name: &str, data: &str) -> Value {
    json!({"name": name, "type": "file", "data": data})
}

fn dir(name: &str) -> Value {
    json!({"name": name, "type": "dir"})
}

fn sorted_names(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(p)
        .unwrap_or_else(|e| panic!("list {}: {e}", p.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn whiteouts_and_opaque_dirs_in_the_merged_view() {
    let d = Daemon::start();
    let archive = d.dir.path().join("layered.tar");
    make_archive(
        &archive,
        json!([{"tag": "layered:1", "layers": [
            [dir("etc"), file("etc/gone", "1"), file("etc/kept", "2"),
             dir("var"), dir("var/cache"), file("var/cache/old", "3")],
            [file("etc/.wh.gone", ""), dir("var/cache"), file("var/cache/.wh..wh..opq", ""),
             file("var/cache/new", "4"), file("top", "5")],
        ]}]),
    );
    d.docker_ok(&["load", "-i", &archive.display().to_string()]);
    let img = d.inspect("image", "layered:1");
    assert_eq!(img["RootFS"]["Layers"].as_array().unwrap().len(), 2);
    let data = &img["GraphDriver"]["Data"];
    let upper = data["UpperDir"].as_str().unwrap();
    let lower = data["LowerDir"].as_str().unwrap();
    assert!(!lower.contains(':'), "one lower layer: {lower}");

    let merged = d.dir.path().join("merged");
    fs::create_dir(&merged).unwrap();
    let st = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o"])
        .arg(format!("lowerdir={upper}:{lower}"))
        .arg(&merged)
        .status()
        .expect("mount");
    assert!(st.success(), "overlay mount failed");
    let etc = sorted_names(&merged.join("etc"));
    let cache = sorted_names(&merged.join("var/cache"));
    let top = fs::read_to_string(merged.join("top")).unwrap_or_default();
    let st = Command::new("umount")
        .arg(&merged)
        .status()
        .expect("umount");
    assert!(st.success());
    assert_eq!(etc, vec!["kept"]);
    assert_eq!(cache, vec!["new"]);
    assert_eq!(top, "5");

    // The layers are shared: a second image on the same base adds one dir.
    let archive2 = d.dir.path().join("second.tar");
    make_archive(
        &archive2,
        json!([{"tag": "layered:2", "layers": [
            [dir("etc"), file("etc/gone", "1"), file("etc/kept", "2"),
             dir("var"), dir("var/cache"), file("var/cache/old", "3")],
            [file("other", "6")],
        ]}]),
    );
    d.docker_ok(&["load", "-i", &archive2.display().to_string()]);
    assert_eq!(
        fs::read_dir(d.data_root.join("overlay/layers"))
            .unwrap()
            .count(),
        3
    );
    d.docker_ok(&["rmi", "layered:1"]);
    assert_eq!(
        fs::read_dir(d.data_root.join("overlay/layers"))
            .unwrap()
            .count(),
        2
    );
    let base = d.inspect("image", "layered:2")["GraphDriver"]["Data"]["LowerDir"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        Path::new(&base).join("etc/kept").is_file(),
        "shared base layer kept"
    );
}

/// A directory outside the store that hostile tars aim at.
fn target_dir(d: &Daemon) -> PathBuf {
    let t = d.dir.path().join("target");
    fs::create_dir_all(&t).unwrap();
    fs::write(t.join("victim"), "original").unwrap();
    t
}

fn assert_untouched(t: &Path) {
    assert_eq!(
        sorted_names(t),
        vec!["victim"],
        "something was written outside the store"
    );
    assert_eq!(fs::read_to_string(t.join("victim")).unwrap(), "original");
}

fn load_hostile(d: &Daemon, name: &str, layer: Value) -> berth_tests::Output {
    let archive = d.dir.path().join(format!("{name}.tar"));
    make_archive(
        &archive,
        json!([{"tag": format!("{name}:x"), "layers": [layer]}]),
    );
    d.docker(&["load", "-i", &archive.display().to_string()])
}

#[test]
fn hostile_layers_change_nothing_outside_the_store() {
    let d = Daemon::start();
    let t = target_dir(&d);
    let ts = t.display().to_string();
    // The data root is <tmp>/data; ../../../target from a layer dir
    // (<data>/overlay/tmp/layer-x/diff) climbs to <tmp>/target.
    let climb = "../../../../../target/pwned";

    let out = load_hostile(&d, "dotdot", json!([file(climb, "x")]));
    assert!(!out.success(), "a ../ entry must be refused");
    assert!(out.stderr.contains("escapes"), "{}", out.stderr);
    assert_untouched(&t);

    let out = load_hostile(&d, "absolute", json!([file(&format!("{ts}/pwned"), "x")]));
    assert!(out.success(), "absolute names are confined: {}", out.stderr);
    assert_untouched(&t);
    let upper = d.inspect("image", "absolute:x")["GraphDriver"]["Data"]["UpperDir"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(Path::new(&upper)
        .join(ts.trim_start_matches('/'))
        .join("pwned")
        .is_file());

    let out = load_hostile(
        &d,
        "symlink",
        json!([
            {"name": "abs", "type": "symlink", "target": ts},
            {"name": "rel", "type": "symlink", "target": "../../../../../target"},
            file("abs/pwned", "x"),
            file("rel/pwned2", "y"),
        ]),
    );
    // Confined or refused, never written outside.
    let _ = out;
    assert_untouched(&t);

    let out = load_hostile(
        &d,
        "hardlink",
        json!([{"name": "h", "type": "hardlink", "target": format!("{ts}/victim")}]),
    );
    assert!(
        !out.success(),
        "hardlink to a file outside the layer must fail"
    );
    let out = load_hostile(
        &d,
        "hardlink2",
        json!([{"name": "h", "type": "hardlink", "target": "../../../../../target/victim"}]),
    );
    assert!(!out.success());
    assert!(out.stderr.contains("escapes"), "{}", out.stderr);
    assert_untouched(&t);
    use std::os::unix::fs::MetadataExt;
    assert_eq!(fs::metadata(t.join("victim")).unwrap().nlink(), 1);

    // Failed loads leave no half-unpacked layers or temp files behind.
    assert_eq!(
        sorted_names(&d.data_root.join("overlay/tmp")),
        Vec::<String>::new()
    );
    assert_eq!(
        sorted_names(&d.data_root.join("image/tmp")),
        Vec::<String>::new()
    );
}

#[test]
fn compressed_layers_in_an_oci_layout() {
    use std::io::Write;
    let d = Daemon::start();
    // Build an OCI layout by hand: one gzip layer, one zstd-less plain one.
    let work = d.dir.path().join("oci");
    let blobs = work.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let layer_src = d.dir.path().join("layer-src");
    fs::create_dir_all(layer_src.join("data")).unwrap();
    fs::write(layer_src.join("data/hello"), "hi from gzip").unwrap();
    let plain = d.dir.path().join("layer.tar");
    tarball::create(&layer_src, &plain, "data");
    let plain_bytes = fs::read(&plain).unwrap();
    let gz = Command::new("gzip")
        .arg("-c")
        .arg(&plain)
        .output()
        .expect("gzip");
    assert!(gz.status.success());
    let sha = |b: &[u8]| {
        let mut c = Command::new("sha256sum")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(b).unwrap();
        let o = c.wait_with_output().unwrap();
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned()
    };
    let put = |b: &[u8]| {
        let h = sha(b);
        fs::write(blobs.join(&h), b).unwrap();
        (format!("sha256:{h}"), b.len())
    };
    let diff_id = format!("sha256:{}", sha(&plain_bytes));
    let (layer_digest, layer_size) = put(&gz.stdout);
    let config = json!({"architecture": "amd64", "os": "linux", "created": "2024-02-02T00:00:00Z",
        "config": {"Cmd": ["cat", "/data/hello"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]}});
    let (config_digest, config_size) = put(config.to_string().as_bytes());
    let manifest = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": layer_size}]});
    let (manifest_digest, manifest_size) = put(manifest.to_string().as_bytes());
    let index = json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": manifest_digest, "size": manifest_size,
        "annotations": {"io.containerd.image.name": "docker.io/library/oci-test:1", "org.opencontainers.image.ref.name": "1"}}]});
    fs::write(work.join("index.json"), index.to_string()).unwrap();
    fs::write(work.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let archive = d.dir.path().join("oci.tar");
    tarball::create(&work, &archive, ".");

    let out = d.docker_ok(&["load", "-i", &archive.display().to_string()]);
    assert_eq!(out.trim(), "Loaded image: oci-test:1");
    let img = d.inspect("image", "oci-test:1");
    assert_eq!(img["Id"], config_digest);
    assert_eq!(img["RootFS"]["Layers"], json!([diff_id]));
    let upper = img["GraphDriver"]["Data"]["UpperDir"].as_str().unwrap();
    assert_eq!(
        fs::read_to_string(Path::new(upper).join("data/hello")).unwrap(),
        "hi from gzip"
    );
    // Saved again as a docker-archive, the layer is uncompressed with its diff ID.
    let saved = d.dir.path().join("resaved.tar");
    d.docker_ok(&["save", "-o", &saved.display().to_string(), "oci-test:1"]);
    d.docker_ok(&["rmi", "oci-test:1"]);
    d.docker_ok(&["load", "-i", &saved.display().to_string()]);
    assert_eq!(d.inspect("image", "oci-test:1")["Id"], config_digest);

    // A layer whose content does not match its diff ID is refused.
    let bad_config = json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", "0".repeat(64))]}});
    let (bad_digest, bad_size) = put(bad_config.to_string().as_bytes());
    let bad_manifest = json!({"schemaVersion": 2, "config": {"digest": bad_digest, "size": bad_size},
        "layers": [{"digest": layer_digest, "size": layer_size}]});
    let (bm, bms) = put(bad_manifest.to_string().as_bytes());
    fs::write(
        work.join("index.json"),
        json!({"schemaVersion": 2, "manifests": [{"digest": bm, "size": bms}]}).to_string(),
    )
    .unwrap();
    tarball::create(&work, &archive, ".");
    let out = d.docker(&["load", "-i", &archive.display().to_string()]);
    assert!(!out.success());
    assert!(out.stderr.contains("digest mismatch"), "{}", out.stderr);
}
