//! `docker commit` through the real CLI: the new image's layer (added and
//! deleted files), config from the container and `--change`, history
//! comment, parent, the `commit` event, errors, and committing a running
//! container (paused during the diff, running after).

use berth_tests::Daemon;

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn commit_stopped_container_with_changes_and_message() {
    let d = Daemon::with_busybox();
    let since = now_secs();
    d.docker_ok(&[
        "run",
        "--name",
        "cc",
        "-e",
        "FOO=bar",
        "-w",
        "/tmp",
        "busybox",
        "sh",
        "-c",
        "echo x > /newfile; rm /etc/group",
    ]);
    let out = d.docker_ok(&[
        "commit",
        "-c",
        r#"CMD ["cat","/newfile"]"#,
        "-m",
        "msg",
        "-a",
        "me <me@x>",
        "cc",
        "me/app:v2",
    ]);
    let id = out.trim();
    assert!(id.starts_with("sha256:"), "{out}");

    // The layer: the new file is there, the deleted one is gone.
    assert_eq!(d.docker_ok(&["run", "--rm", "me/app:v2"]), "x\n");
    let gone = d.docker(&["run", "--rm", "me/app:v2", "ls", "/etc/group"]);
    assert!(!gone.success(), "{}", gone.stdout);
    assert!(
        d.docker_ok(&["run", "--rm", "me/app:v2", "ls", "/etc"])
            .contains("passwd"),
        "lower layer files stay"
    );

    // Config: the change, completed from the container's config.
    let img = d.inspect("image", "me/app:v2");
    assert_eq!(img["Id"], id);
    let busybox = d.inspect("image", "busybox");
    assert_eq!(img["Parent"], busybox["Id"]);
    assert_eq!(img["Comment"], "msg");
    assert_eq!(img["Author"], "me <me@x>");
    assert_eq!(img["Config"]["Cmd"], serde_json::json!(["cat", "/newfile"]));
    assert_eq!(img["Config"]["WorkingDir"], "/tmp");
    let env = img["Config"]["Env"].as_array().expect("Env");
    assert!(env.contains(&serde_json::json!("FOO=bar")), "{env:?}");
    assert_eq!(
        img["RootFS"]["Layers"].as_array().unwrap().len(),
        busybox["RootFS"]["Layers"].as_array().unwrap().len() + 1
    );

    // History: the comment and the container's command.
    let hist = d.docker_ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}|{{.Comment}}",
        "me/app:v2",
    ]);
    let first = hist.lines().next().unwrap_or("");
    assert_eq!(
        first, "sh -c echo x > /newfile; rm /etc/group|msg",
        "{hist}"
    );

    // The commit event, on the container.
    let until = now_secs() + 1;
    let events = d.docker_ok(&[
        "events", "--since", &since.to_string(), "--until", &until.to_string(),
        "--filter", "event=commit", "--format",
        "{{.Type}} {{.Action}} {{index .Actor.Attributes \"name\"}} {{index .Actor.Attributes \"comment\"}} {{index .Actor.Attributes \"imageID\"}}",
    ]);
    assert_eq!(
        events.trim(),
        format!("container commit cc msg {id}"),
        "{events}"
    );

    // Without a repo, the image is untagged.
    let out = d.docker_ok(&["commit", "cc"]);
    let bare = out.trim();
    assert!(bare.starts_with("sha256:"), "{out}");
    assert_eq!(d.inspect("image", bare)["RepoTags"], serde_json::json!([]));
    // No change: the container's own Cmd.
    assert_eq!(
        d.inspect("image", bare)["Config"]["Cmd"],
        serde_json::json!(["sh", "-c", "echo x > /newfile; rm /etc/group"])
    );
}

#[test]
fn commit_errors() {
    let d = Daemon::with_busybox();
    let out = d.docker(&["commit", "ghost", "x:y"]);
    assert!(!out.success());
    assert!(
        out.stderr.contains("No such container: ghost"),
        "{}",
        out.stderr
    );

    d.docker_ok(&["create", "--name", "cc", "busybox", "true"]);
    let out = d.docker(&["commit", "cc", "Bad/Repo"]);
    assert!(!out.success());
    assert!(
        out.stderr
            .to_lowercase()
            .contains("invalid reference format"),
        "{}",
        out.stderr
    );
    let out = d.docker(&["commit", "-c", "FROBNICATE x", "cc", "ok:1"]);
    assert!(!out.success(), "{}", out.stdout);
    // A created, never started container commits (an empty layer).
    d.docker_ok(&["commit", "cc", "empty:1"]);
    assert_eq!(
        d.docker_ok(&["run", "--rm", "empty:1", "echo", "hi"]),
        "hi\n"
    );
}

#[test]
fn commit_running_container_pauses_it() {
    let d = Daemon::with_busybox();
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "rr",
        "busybox",
        "sh",
        "-c",
        "echo live > /live; exec sleep 300",
    ]);
    assert!(berth_tests::wait_until(
        std::time::Duration::from_secs(10),
        || { d.docker(&["exec", "rr", "cat", "/live"]).stdout == "live\n" }
    ));
    let since = now_secs();
    d.docker_ok(&["commit", "rr", "live:1"]);
    assert_eq!(
        d.docker_ok(&["inspect", "-f", "{{.State.Status}}", "rr"])
            .trim(),
        "running"
    );
    assert_eq!(
        d.docker_ok(&["run", "--rm", "live:1", "cat", "/live"]),
        "live\n"
    );
    let until = now_secs() + 1;
    let events = d.docker_ok(&[
        "events",
        "--since",
        &since.to_string(),
        "--until",
        &until.to_string(),
        "--filter",
        "container=rr",
        "--filter",
        "event=pause",
        "--filter",
        "event=unpause",
        "--filter",
        "event=commit",
        "--format",
        "{{.Action}}",
    ]);
    let actions: Vec<&str> = events.lines().collect();
    assert_eq!(actions, ["pause", "commit", "unpause"], "{events}");

    // --pause=false leaves it running throughout.
    let since = now_secs();
    d.docker_ok(&["commit", "--pause=false", "rr", "live:2"]);
    let until = now_secs() + 1;
    let events = d.docker_ok(&[
        "events",
        "--since",
        &since.to_string(),
        "--until",
        &until.to_string(),
        "--filter",
        "container=rr",
        "--filter",
        "event=pause",
        "--filter",
        "event=unpause",
        "--filter",
        "event=commit",
        "--format",
        "{{.Action}}",
    ]);
    assert_eq!(events.trim(), "commit", "{events}");

    // A paused container stays paused.
    d.docker_ok(&["pause", "rr"]);
    d.docker_ok(&["commit", "rr", "live:3"]);
    assert_eq!(
        d.docker_ok(&["inspect", "-f", "{{.State.Status}}", "rr"])
            .trim(),
        "paused"
    );
    d.docker_ok(&["unpause", "rr"]);
    d.docker_ok(&["rm", "-f", "rr"]);
}

#[test]
fn commit_api_body_config_and_repeated_changes() {
    let d = Daemon::with_busybox();
    d.docker_ok(&[
        "run", "--name", "api", "-e", "A=1", "-e", "B=2", "--label", "l1=x", "busybox", "true",
    ]);
    let out = d.curl(&[
        "-w",
        "\n%{http_code}",
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"Env":["B=override"],"Labels":{"l2":"y"},"Entrypoint":["/bin/echo"]}"#,
        "http://localhost/v1.50/commit?container=api&repo=viaapi&tag=t1&comment=hi&changes=ENV%20C%3D3&changes=EXPOSE%208080",
    ]);
    let stdout = out.ok();
    let (json, code) = stdout.rsplit_once('\n').unwrap();
    assert_eq!(code, "201", "{stdout}");
    berth_tests::assert_matches_spec("POST", "/commit", json);
    let id = serde_json::from_str::<serde_json::Value>(json).unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_owned();
    let img = d.inspect("image", "viaapi:t1");
    assert_eq!(img["Id"], id);
    let cfg = &img["Config"];
    let env: Vec<&str> = cfg["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for want in ["B=override", "C=3", "A=1"] {
        assert!(env.contains(&want), "{env:?}");
    }
    assert!(!env.contains(&"B=2"), "{env:?}");
    assert_eq!(cfg["Labels"], serde_json::json!({"l1": "x", "l2": "y"}));
    assert_eq!(cfg["Entrypoint"], serde_json::json!(["/bin/echo"]));
    // An Entrypoint without Cmd does not inherit the container's Cmd.
    assert!(cfg["Cmd"].is_null(), "{cfg}");
    assert!(cfg["ExposedPorts"]["8080/tcp"].is_object(), "{cfg}");
    assert_eq!(
        d.docker_ok(&["run", "--rm", "viaapi:t1", "hello"]),
        "hello\n"
    );

    let out = d.curl(&[
        "-w",
        "\n%{http_code}",
        "-X",
        "POST",
        "http://localhost/v1.50/commit?container=nope",
    ]);
    let stdout = out.ok();
    assert!(stdout.ends_with("\n404"), "{stdout}");
    assert!(stdout.contains("No such container: nope"), "{stdout}");
}

#[test]
fn commit_through_docker_py() {
    let d = Daemon::with_busybox();
    let out = d.python(
        r#"
import docker
client = docker.from_env()
c = client.containers.run('busybox', ['sh', '-c', 'echo py > /py'], detach=True)
c.wait()
img = c.commit(repository='pyimg', tag='1', message='from py', changes=['ENV P=1'])
print(img.id)
print(client.containers.run('pyimg:1', ['sh', '-c', 'cat /py; echo $P'], remove=True).decode(), end='')
print(img.history()[0]['Comment'])
"#,
    );
    assert!(out.success(), "{}\n{}", out.stdout, out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].starts_with("sha256:"), "{}", out.stdout);
    assert_eq!(&lines[1..], ["py", "1", "from py"], "{}", out.stdout);
}
