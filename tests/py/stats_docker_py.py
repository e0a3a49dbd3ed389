"""docker-py stats (one sample, stream, one-shot) against berthd."""
import docker

client = docker.from_env()
c = client.containers.run("busybox", ["sh", "-c", "while :; do :; done"], detach=True, mem_limit="32m")
try:
    s = c.stats(stream=False)
    assert s["memory_stats"]["limit"] == 32 * 1024 * 1024, s["memory_stats"]
    assert s["precpu_stats"]["cpu_usage"]["total_usage"] > 0, s["precpu_stats"]
    assert s["cpu_stats"]["cpu_usage"]["total_usage"] > s["precpu_stats"]["cpu_usage"]["total_usage"]
    assert s["pids_stats"]["current"] >= 1, s["pids_stats"]

    s = c.stats(stream=False, one_shot=True)
    assert s["preread"] == "0001-01-01T00:00:00Z", s["preread"]

    gen = c.stats(stream=True, decode=True)
    first, second = next(gen), next(gen)
    assert second["preread"] == first["read"], (first["read"], second["preread"])
    gen.close()
finally:
    c.remove(force=True)
print("stats_docker_py: ok")
