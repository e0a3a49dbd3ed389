//! Image store through the real docker CLI: load, list, tag, rmi, save,
//! import, history, prune, events, restart.

use std::fs;
use std::process::Command;

use berth_tests::{busybox_tar, tarball, Daemon};

fn image_id(d: &Daemon, name: &str) -> String {
    d.inspect("image", name)["Id"]
        .as_str()
        .expect("Id")
        .to_owned()
}

/// The busybox fixture's root file system as a tar (gzipped if `name` ends
/// in .gz) in the daemon's directory, for `docker import`.
fn busybox_rootfs_tar(d: &Daemon, name: &str) -> std::path::PathBuf {
    let tar = d.dir.path().join(name);
    tarball::create(
        &berth_tests::fixtures_dir().join("busybox/rootfs"),
        &tar,
        ".",
    );
    tar
}

fn layer_dirs(d: &Daemon) -> usize {
    fs::read_dir(d.data_root.join("overlay/layers"))
        .map(|r| r.count())
        .unwrap_or(0)
}

#[test]
fn load_list_inspect() {
    let d = Daemon::start();
    let out = d.docker_ok(&["load", "-i", &busybox_tar().display().to_string()]);
    assert_eq!(out.trim(), "Loaded image: busybox:latest");
    let list = d.docker_ok(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]);
    let img = d.inspect("image", "busybox");
    let id = img["Id"].as_str().unwrap();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    assert_eq!(list.trim(), format!("busybox:latest {}", &id[7..19]));
    assert_eq!(img["RepoTags"], serde_json::json!(["busybox:latest"]));
    assert_eq!(img["Config"]["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(img["GraphDriver"]["Name"], "overlay2");
    assert_eq!(img["RootFS"]["Type"], "layers");
    assert_eq!(img["Os"], "linux");
    assert!(img["Size"].as_u64().unwrap() > 500_000);
    // The unpacked layer is the image's filesystem.
    let upper = img["GraphDriver"]["Data"]["UpperDir"].as_str().unwrap();
    assert!(std::path::Path::new(upper).join("bin/busybox").is_file());
    // Same answers by ID, ID prefix and fully qualified name.
    assert_eq!(image_id(&d, &id[7..19]), id);
    assert_eq!(image_id(&d, "docker.io/library/busybox:latest"), id);
    // Loading again changes nothing.
    d.docker_ok(&["load", "-i", &busybox_tar().display().to_string()]);
    assert_eq!(layer_dirs(&d), 1);
}

#[test]
fn tag_and_rmi() {
    let d = Daemon::start();
    d.load_busybox();
    let id = image_id(&d, "busybox");
    let short = &id[7..19];
    d.docker_ok(&["tag", "busybox", "localhost:5000/team/app:v1"]);
    d.docker_ok(&["tag", short, "other"]);
    let tags = d.inspect("image", "busybox")["RepoTags"].clone();
    assert_eq!(
        tags,
        // Sorted by the full reference, as dockerd sorts them.
        serde_json::json!([
            "busybox:latest",
            "other:latest",
            "localhost:5000/team/app:v1"
        ])
    );
    let filtered = d.docker_ok(&[
        "images",
        "--format",
        "{{.Repository}}",
        "--filter",
        "reference=localhost:5000/*/*",
    ]);
    assert_eq!(filtered.trim(), "localhost:5000/team/app");

    // By ID with several repositories: refused unless forced, as dockerd.
    let out = d.docker(&["rmi", short]);
    assert!(!out.success());
    assert!(
        out.stderr.contains(&format!(
            "conflict: unable to delete {short} (must be forced) - image is referenced in multiple repositories"
        )),
        "{}",
        out.stderr
    );
    // By tag: only untags.
    let out = d.docker_ok(&["rmi", "other"]);
    assert_eq!(out.trim(), "Untagged: other:latest");
    assert_eq!(layer_dirs(&d), 1);
    let out = d.docker_ok(&["rmi", "-f", short]);
    assert!(out.contains("Untagged: busybox:latest"), "{out}");
    assert!(
        out.contains("Untagged: localhost:5000/team/app:v1"),
        "{out}"
    );
    assert!(out.contains(&format!("Deleted: {id}")), "{out}");
    assert_eq!(layer_dirs(&d), 0, "the last image's layers are removed");
    let out = d.docker(&["image", "inspect", "busybox"]);
    assert!(
        out.stderr.contains("No such image: busybox:latest"),
        "{}",
        out.stderr
    );
}

#[test]
fn rmi_of_one_image_keeps_the_others_layers() {
    let d = Daemon::start();
    d.load_busybox();
    let tar = busybox_rootfs_tar(&d, "rootfs.tar");
    d.docker_ok(&["import", &tar.display().to_string(), "imported:1"]);
    assert_eq!(layer_dirs(&d), 2);
    let out = d.docker_ok(&["rmi", "imported:1"]);
    assert!(
        out.contains("Untagged: imported:1") && out.contains("Deleted: sha256:"),
        "{out}"
    );
    assert_eq!(layer_dirs(&d), 1);
    assert!(d.docker_ok(&["images", "-q"]).trim().len() == 12);
}

#[test]
fn save_load_round_trip_keeps_ids() {
    let d = Daemon::start();
    d.load_busybox();
    d.docker_ok(&["tag", "busybox", "copy:2"]);
    let id = image_id(&d, "busybox");
    let saved = d.dir.path().join("saved.tar");
    d.docker_ok(&[
        "save",
        "-o",
        &saved.display().to_string(),
        "busybox",
        "copy:2",
    ]);
    d.docker_ok(&["rmi", "-f", &id]);
    assert_eq!(d.docker_ok(&["images", "-q"]).trim(), "");
    let out = d.docker_ok(&["load", "-i", &saved.display().to_string()]);
    assert!(
        out.contains("Loaded image: busybox:latest") && out.contains("Loaded image: copy:2"),
        "{out}"
    );
    assert_eq!(image_id(&d, "busybox"), id);
    assert_eq!(image_id(&d, "copy:2"), id);

    // And through a pipe, as `docker save | docker load`.
    let mut save = d.docker_command();
    save.args(["save", "busybox"]);
    let archive = save.output().expect("docker save");
    assert!(archive.status.success());
    d.docker_ok(&["rmi", "-f", &id]);
    let out = d.docker_stdin(&["load"], Some(&archive.stdout));
    assert!(out.success(), "{}", out.stderr);
    assert_eq!(image_id(&d, "busybox"), id);
    // The archive lists the layer as a docker-archive does.
    let listing = Command::new("tar").arg("-tf").arg(&saved).output().unwrap();
    let names = String::from_utf8_lossy(&listing.stdout);
    assert!(
        names.contains("manifest.json")
            && names.contains("/layer.tar")
            && names.contains("repositories"),
        "{names}"
    );
}

#[test]
fn import_with_changes_and_history() {
    let d = Daemon::start();
    let tar = busybox_rootfs_tar(&d, "rootfs.tar.gz");
    let out = d.docker_ok(&[
        "import",
        "--change",
        r#"CMD ["sh"]"#,
        "--change",
        "ENV FOO=bar",
        "--change",
        "WORKDIR /srv",
        "-m",
        "from the fixture",
        &tar.display().to_string(),
        "mine:imported",
    ]);
    let id = out.trim();
    assert!(id.starts_with("sha256:"), "{out}");
    let img = d.inspect("image", "mine:imported");
    assert_eq!(img["Id"], id);
    assert_eq!(img["Config"]["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(img["Config"]["Env"], serde_json::json!(["FOO=bar"]));
    assert_eq!(img["Config"]["WorkingDir"], "/srv");
    assert_eq!(img["Comment"], "from the fixture");
    let hist = d.docker_ok(&[
        "history",
        "--format",
        "{{.ID}}|{{.Comment}}",
        "mine:imported",
    ]);
    assert_eq!(hist.trim(), format!("{}|from the fixture", &id[7..19]));
    let out = d.docker(&["import", "--change", "RUN true", &tar.display().to_string()]);
    assert!(!out.success());
    assert!(
        out.stderr.contains("run is not a valid change command"),
        "{}",
        out.stderr
    );
    // Unnamed import from stdin: a dangling image with the default comment.
    let data = fs::read(&tar).unwrap();
    let out = d.docker_stdin(&["import", "-"], Some(&data));
    assert!(out.success(), "{}", out.stderr);
    let dangling = d.docker_ok(&["images", "-q", "--filter", "dangling=true"]);
    assert_eq!(dangling.trim(), &out.stdout.trim()[7..19]);
    let hist = d.docker_ok(&["history", "--format", "{{.Comment}}", dangling.trim()]);
    assert_eq!(hist.trim(), "Imported from -");
}

#[test]
fn prune_dangling_then_all() {
    let d = Daemon::start();
    d.load_busybox();
    let tar = busybox_rootfs_tar(&d, "rootfs.tar");
    d.docker_ok(&["import", &tar.display().to_string()]);
    assert_eq!(d.docker_ok(&["images", "-q"]).lines().count(), 2);
    let out = d.docker_ok(&["image", "prune", "-f"]);
    assert!(
        out.contains("Deleted Images:") && out.contains("Total reclaimed space:"),
        "{out}"
    );
    assert_eq!(
        d.docker_ok(&["images", "--format", "{{.Repository}}"])
            .trim(),
        "busybox"
    );
    let out = d.docker_ok(&["image", "prune", "-a", "-f"]);
    assert!(out.contains("untagged: busybox:latest"), "{out}");
    assert_eq!(d.docker_ok(&["images", "-q"]).trim(), "");
    assert_eq!(layer_dirs(&d), 0);
}

#[test]
fn events_show_image_actions() {
    let d = Daemon::start();
    let start = chrono_now();
    d.load_busybox();
    d.docker_ok(&["tag", "busybox", "ev:1"]);
    d.docker_ok(&["rmi", "ev:1"]);
    let id = image_id(&d, "busybox");
    let saved = d.dir.path().join("ev.tar");
    d.docker_ok(&["save", "-o", &saved.display().to_string(), "busybox"]);
    d.docker_ok(&["rmi", "busybox"]);
    let tar = busybox_rootfs_tar(&d, "rootfs.tar");
    let imported = d
        .docker_ok(&["import", &tar.display().to_string(), "ev:imp"])
        .trim()
        .to_owned();
    let until = chrono_now() + 1;
    let out = d.docker_ok(&[
        "events",
        "--since",
        &start.to_string(),
        "--until",
        &until.to_string(),
        "--filter",
        "type=image",
        "--format",
        "{{.Action}} {{.Actor.ID}} {{index .Actor.Attributes \"name\"}}",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        vec![
            format!("load {id} {id}"),
            format!("tag {id} ev:1"),
            format!("untag {id} {id}"),
            format!("save {id} {id}"),
            format!("untag {id} {id}"),
            format!("delete {id} {id}"),
            format!("import {imported} {imported}"),
            format!("tag {imported} ev:imp"),
        ],
        "{out}"
    );
}

fn chrono_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn restart_keeps_images_and_tags() {
    let mut d = Daemon::start();
    d.load_busybox();
    d.docker_ok(&["tag", "busybox", "keep/me:too"]);
    // The CLI groups an image's tags in a map by repository, so the order of
    // rows for one image's repositories varies from run to run: compare sets.
    let rows = |d: &Daemon| {
        let out = d.docker_ok(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]);
        let mut rows: Vec<String> = out.lines().map(str::to_string).collect();
        rows.sort();
        rows
    };
    let before = rows(&d);
    d.stop();
    d.start_again();
    assert_eq!(before, rows(&d));
    assert_eq!(before.len(), 2);
    // A crash (SIGKILL) loses nothing either.
    d.docker_ok(&["tag", "busybox", "after:crash"]);
    d.kill9();
    d.start_again();
    let tags = d.inspect("image", "busybox")["RepoTags"].clone();
    assert_eq!(
        tags,
        serde_json::json!(["keep/me:too", "after:crash", "busybox:latest"])
    );
}

#[test]
fn parallel_loads_share_one_layer() {
    let d = Daemon::start();
    let tar = busybox_tar().display().to_string();
    let outs: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| d.docker(&["load", "-i", &tar])))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for o in &outs {
        assert!(o.success(), "{}", o.stderr);
    }
    assert_eq!(layer_dirs(&d), 1);
    assert_eq!(d.docker_ok(&["images", "-q"]).lines().count(), 1);
    assert_eq!(
        fs::read_dir(d.data_root.join("overlay/tmp"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        fs::read_dir(d.data_root.join("image/tmp")).unwrap().count(),
        0
    );
    // Loading while deleting never leaves an image without its layers.
    std::thread::scope(|s| {
        let loader = s.spawn(|| {
            for _ in 0..5 {
                d.docker(&["load", "-i", &tar]);
            }
        });
        for _ in 0..5 {
            d.docker(&["rmi", "-f", "busybox"]);
        }
        loader.join().unwrap();
    });
    d.load_busybox();
    let upper = d.inspect("image", "busybox")["GraphDriver"]["Data"]["UpperDir"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(std::path::Path::new(&upper).join("bin/busybox").is_file());
}

#[test]
fn list_filters_before_since_label_dangling() {
    let d = Daemon::start();
    d.load_busybox(); // created 1970
    let archive = d.dir.path().join("labelled.tar");
    let spec = serde_json::json!({"out": archive.display().to_string(), "images": [
        {"tag": "labelled:1", "labels": {"tier": "web", "team": "a"},
         "layers": [[{"name": "f", "type": "file", "data": "x"}]]}]});
    let st = Command::new("python3")
        .arg(berth_tests::workspace_root().join("tests/py/images_mkarchive.py"))
        .arg(spec.to_string())
        .status()
        .expect("python3");
    assert!(st.success());
    d.docker_ok(&["load", "-i", &archive.display().to_string()]); // created 2024
    let q = |filter: &str| {
        let mut v: Vec<String> = d
            .docker_ok(&["images", "--format", "{{.Repository}}", "--filter", filter])
            .lines()
            .map(str::to_owned)
            .collect();
        v.sort();
        v
    };
    assert_eq!(q("since=busybox"), vec!["labelled"]);
    assert_eq!(q("before=labelled:1"), vec!["busybox"]);
    assert_eq!(q("label=tier"), vec!["labelled"]);
    assert_eq!(q("label=tier=web"), vec!["labelled"]);
    assert_eq!(q("label=tier=db"), Vec::<String>::new());
    assert_eq!(q("dangling=false"), vec!["busybox", "labelled"]);
    assert_eq!(q("reference=label*"), vec!["labelled"]);
    assert_eq!(q("until=2000-01-01T00:00:00Z"), vec!["busybox"]);
    let out = d.docker(&["images", "--filter", "since=nosuch"]);
    assert!(
        out.stderr.contains("No such image: nosuch"),
        "{}",
        out.stderr
    );
    // Shared size: both images alone, so nothing is shared.
    let out = d.curl(&["http://localhost/images/json?shared-size=1"]).ok();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        v.as_array().unwrap().iter().all(|i| i["SharedSize"] == 0),
        "{v}"
    );
}

#[test]
fn tagging_again_moves_last_tag_time() {
    let d = Daemon::start();
    d.docker_ok(&["load", "-i", &busybox_tar().display().to_string()]);
    let last_tag = |d: &Daemon| {
        d.inspect("image", "busybox")["Metadata"]["LastTagTime"]
            .as_str()
            .expect("LastTagTime")
            .to_owned()
    };
    d.docker_ok(&["tag", "busybox", "again:1"]);
    let first = last_tag(&d);
    std::thread::sleep(std::time::Duration::from_millis(20));
    // The same tag for the same image: dockerd moves LastTagTime too.
    d.docker_ok(&["tag", "busybox", "again:1"]);
    let second = last_tag(&d);
    assert_ne!(first, second, "LastTagTime did not move");
    assert_eq!(image_id(&d, "again:1"), image_id(&d, "busybox"));
}
