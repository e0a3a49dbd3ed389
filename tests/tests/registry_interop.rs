//! Registry content berth did not make: a multi-platform OCI index that
//! skopeo copies in (two platforms built from the busybox fixture), pulled
//! with and without `--platform`; and images moving through the test
//! registry between berthd and Debian's dockerd (private socket) both ways
//! with the same image IDs.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use berth_tests::dockerd::PrivateDockerd;
use berth_tests::registry::Registry;
use berth_tests::{busybox_tar, run_with_timeout, Daemon};
use serde_json::{json, Value};

fn skopeo(home: &Path, args: &[&str]) -> String {
    let mut cmd = Command::new("/usr/bin/skopeo");
    cmd.args(args).env("HOME", home).env("TMPDIR", home);
    run_with_timeout(&mut cmd, None, Duration::from_secs(120)).ok()
}

fn sha256(path: &Path) -> String {
    let mut cmd = Command::new("sha256sum");
    cmd.arg(path);
    let out = run_with_timeout(&mut cmd, None, Duration::from_secs(30)).ok();
    out.split_whitespace().next().unwrap().to_owned()
}

/// An OCI layout's blob store.
struct Layout<'a>(&'a Path);

impl Layout<'_> {
    fn blob_path(&self, digest: &str) -> std::path::PathBuf {
        self.0
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    }

    fn read(&self, digest: &str) -> Value {
        serde_json::from_slice(&fs::read(self.blob_path(digest)).unwrap()).unwrap()
    }

    /// Stores `v` as a blob; returns (digest, size).
    fn put(&self, v: &Value) -> (String, usize) {
        let bytes = serde_json::to_vec(v).unwrap();
        let tmp = self.0.join("blob.tmp");
        fs::write(&tmp, &bytes).unwrap();
        let digest = format!("sha256:{}", sha256(&tmp));
        fs::rename(&tmp, self.blob_path(&digest)).unwrap();
        (digest, bytes.len())
    }
}

/// Makes `dir` an OCI layout whose `multi` is an index of the fixture
/// (linux/amd64) and the same layers with an arm64 config; returns the
/// two config digests (the image IDs), amd64 first.
fn two_platform_layout(home: &Path, dir: &Path) -> (String, String) {
    let src = format!("docker-archive:{}", busybox_tar().display());
    let dest = format!("oci:{}:single", dir.display());
    skopeo(home, &["copy", "--format", "oci", &src, &dest]);
    let layout = Layout(dir);
    let top: Value = serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    let amd = top["manifests"][0].clone();
    let manifest = layout.read(amd["digest"].as_str().unwrap());
    let amd_config = manifest["config"]["digest"].as_str().unwrap().to_owned();
    let mut config = layout.read(&amd_config);
    assert_eq!(config["architecture"], "amd64", "the fixture's platform");
    config["architecture"] = json!("arm64");
    config["variant"] = json!("v8");
    let (arm_config, arm_config_size) = layout.put(&config);
    let mut arm_manifest = manifest.clone();
    arm_manifest["config"]["digest"] = json!(arm_config);
    arm_manifest["config"]["size"] = json!(arm_config_size);
    let (arm, arm_size) = layout.put(&arm_manifest);
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": amd["mediaType"], "digest": amd["digest"], "size": amd["size"],
             "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": amd["mediaType"], "digest": arm, "size": arm_size,
             "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
        ],
    });
    let (index_digest, index_size) = layout.put(&index);
    let top = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": index_digest, "size": index_size,
            "annotations": {"org.opencontainers.image.ref.name": "multi"},
        }],
    });
    fs::write(dir.join("index.json"), top.to_string()).unwrap();
    (amd_config, arm_config)
}

fn image_field(d: &Daemon, name: &str, field: &str) -> String {
    d.docker_ok(&["image", "inspect", "-f", field, name])
        .trim()
        .to_owned()
}

#[test]
fn multi_platform_index_pulls_the_platform_asked_for() {
    let reg = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    let (amd_id, arm_id) = two_platform_layout(work.path(), &layout);
    let src = format!("oci:{}:multi", layout.display());
    let dest = format!("docker://{}", reg.image("multi/bb:1"));
    skopeo(
        work.path(),
        &["copy", "--all", "--dest-tls-verify=false", &src, &dest],
    );
    let raw = skopeo(
        work.path(),
        &["inspect", "--raw", "--tls-verify=false", &dest],
    );
    let served: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(served["manifests"].as_array().unwrap().len(), 2, "{raw}");

    let d = Daemon::start();
    let name = reg.image("multi/bb:1");
    // The host's platform (the fixture is amd64, as the test host).
    d.docker_ok(&["pull", &name]);
    assert_eq!(image_field(&d, &name, "{{.Id}}"), amd_id);
    assert_eq!(image_field(&d, &name, "{{.Architecture}}"), "amd64");
    assert_eq!(d.docker_ok(&["run", "--rm", &name, "echo", "ran"]), "ran\n");
    // Another platform by name: the arm64 manifest's image.
    let out = d.docker_ok(&["pull", "--platform", "linux/arm64", &name]);
    assert!(out.contains("Downloaded newer image"), "{out}");
    assert_eq!(image_field(&d, &name, "{{.Id}}"), arm_id);
    assert_eq!(
        image_field(&d, &name, "{{.Architecture}}/{{.Variant}}"),
        "arm64/v8"
    );
    d.docker_ok(&["pull", "--platform", "linux/amd64", &name]);
    assert_eq!(image_field(&d, &name, "{{.Id}}"), amd_id);
    // A platform the index does not have: dockerd's error.
    let out = d.docker(&["pull", "--platform", "linux/s390x", &name]);
    assert!(!out.success());
    assert!(
        out.stderr.contains("no matching manifest for linux/s390x"),
        "{}",
        out.stderr
    );
}

#[test]
fn images_move_between_dockerd_and_berthd_through_a_registry() {
    let reg = Registry::start();
    let dockerd = PrivateDockerd::start();
    let berth = Daemon::with_busybox();
    let tar = busybox_tar();
    dockerd.docker_ok(&["load", "-i", tar.to_str().unwrap()]);

    // dockerd pushes, berth pulls the same image.
    let from_dockerd = reg.image("interop/from-dockerd:1");
    dockerd.docker_ok(&["tag", "busybox", &from_dockerd]);
    dockerd.docker_ok(&["push", &from_dockerd]);
    berth.docker_ok(&["pull", &from_dockerd]);
    let dockerd_id = dockerd
        .docker_ok(&["image", "inspect", "-f", "{{.Id}}", &from_dockerd])
        .trim()
        .to_owned();
    assert_eq!(image_field(&berth, &from_dockerd, "{{.Id}}"), dockerd_id);
    assert_eq!(
        berth.docker_ok(&["run", "--rm", &from_dockerd, "echo", "ok"]),
        "ok\n"
    );

    // berth pushes an image of its own making, dockerd pulls it.
    berth.docker_ok(&[
        "run",
        "--name",
        "maker",
        "busybox",
        "sh",
        "-c",
        "echo made > /made",
    ]);
    let from_berth = reg.image("interop/from-berth:1");
    berth.docker_ok(&["commit", "maker", &from_berth]);
    berth.docker_ok(&["push", &from_berth]);
    dockerd.docker_ok(&["pull", &from_berth]);
    let berth_id = image_field(&berth, &from_berth, "{{.Id}}");
    let got = dockerd
        .docker_ok(&["image", "inspect", "-f", "{{.Id}}", &from_berth])
        .trim()
        .to_owned();
    assert_eq!(got, berth_id);
    // The same bytes in the layer dockerd unpacked: save the image and
    // compare the layer digests each daemon lists.
    let layers = |out: String| out.trim().to_owned();
    assert_eq!(
        layers(dockerd.docker_ok(&[
            "image",
            "inspect",
            "-f",
            "{{json .RootFS.Layers}}",
            &from_berth
        ])),
        image_field(&berth, &from_berth, "{{json .RootFS.Layers}}")
    );
    berth.docker_ok(&["rm", "maker"]);
}
