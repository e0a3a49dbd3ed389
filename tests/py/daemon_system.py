"""docker-py against berthd: ping, version, info, df, events with since/until
and filters, and an old pinned API version. Prints "daemon_system ok"."""

import time

import docker


def main():
    client = docker.from_env(version="auto")
    api = client.api
    assert api.ping() is True, "ping"
    v = api.version()
    assert v["ApiVersion"] == "1.50", v
    assert v["Os"] == "linux", v
    assert api.api_version == "1.50", api.api_version

    info = client.info()
    assert info["NCPU"] >= 1 and info["MemTotal"] > 0, info
    assert info["OSType"] == "linux"
    assert isinstance(info["Warnings"], list)

    df = client.df()
    for key in ("Images", "Containers", "Volumes", "BuildCache"):
        assert isinstance(df[key], list), (key, df)

    start = time.time()
    client.volumes.create(name="pyvol", labels={"suite": "daemon"})
    client.volumes.get("pyvol").remove()
    end = time.time() + 1

    events = list(api.events(since=int(start) - 1, until=int(end) + 1, decode=True,
                             filters={"type": "volume", "volume": "pyvol"}))
    actions = [e["Action"] for e in events]
    assert actions == ["create", "destroy"], events
    for e in events:
        assert e["Type"] == "volume" and e["scope"] == "local", e
        assert e["Actor"]["ID"] == "pyvol", e
        assert isinstance(e["timeNano"], int) and e["time"] == e["timeNano"] // 10**9, e

    only_destroy = list(api.events(since=int(start) - 1, until=int(end) + 1, decode=True,
                                   filters={"event": "destroy", "type": "volume"}))
    assert [e["Action"] for e in only_destroy] == ["destroy"], only_destroy

    old = docker.from_env(version="1.30").api
    assert old.version()["ApiVersion"] == "1.50"
    try:
        docker.from_env(version="1.99").api.info()
        raise AssertionError("API 1.99 was accepted")
    except docker.errors.APIError as e:
        assert e.status_code == 400, e
        assert "client version 1.99 is too new" in str(e), e
    print("daemon_system ok")


if __name__ == "__main__":
    main()
