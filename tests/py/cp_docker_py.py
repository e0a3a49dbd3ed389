"""docker-py put_archive / get_archive / HEAD stat against berthd."""
import io
import tarfile

import docker
import docker.errors

client = docker.from_env()
c = client.containers.run("busybox", ["sleep", "1000"], detach=True)
try:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"from docker-py\n"
        info = tarfile.TarInfo("dir/file.txt")
        info.size = len(data)
        info.mode = 0o640
        info.uid = 1000
        info.gid = 1000
        tar.addfile(info, io.BytesIO(data))
    assert c.put_archive("/tmp", buf.getvalue()) is True

    stream, stat = c.get_archive("/tmp/dir/file.txt")
    assert stat["name"] == "file.txt", stat
    assert stat["size"] == len(data), stat
    assert stat["mode"] & 0o777 == 0o640, stat
    assert stat["linkTarget"] == "", stat
    got = io.BytesIO(b"".join(stream))
    with tarfile.open(fileobj=got) as tar:
        member = tar.getmember("file.txt")
        assert (member.uid, member.gid) == (1000, 1000), member
        assert tar.extractfile(member).read() == data

    stream, stat = c.get_archive("/tmp/dir")
    assert stat["mode"] & (1 << 31), stat  # Go's os.ModeDir
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        names = sorted(tar.getnames())
    assert names == ["dir", "dir/file.txt"], names

    # The symlink /bin/sh -> busybox: stat shows the link and its target.
    _, stat = c.get_archive("/bin/sh")
    assert stat["mode"] & (1 << 27), stat  # os.ModeSymlink
    assert stat["linkTarget"] == "/bin/busybox", stat

    try:
        c.get_archive("/nope")
        raise AssertionError("expected a 404")
    except docker.errors.NotFound as e:
        assert "Could not find the file /nope in container" in str(e), e

    try:
        c.put_archive("/tmp/dir/file.txt", buf.getvalue())
        raise AssertionError("expected a 400")
    except docker.errors.APIError as e:
        assert e.status_code == 400 and "not a directory" in str(e), e
finally:
    c.remove(force=True)
print("cp_docker_py: ok")
