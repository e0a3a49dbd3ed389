"""docker-py drives the network API: create with IPAM, ports={} (random
host port) and NetworkSettings.Ports, connect/disconnect with aliases,
list filters, removal and prune. Usage: network_dockerpy.py BRIDGE SUBNET_BASE
(e.g. bt12ab34p 10.77.3). Prints "ok"."""

import sys
import time
import urllib.request

import docker

bridge, base = sys.argv[1], sys.argv[2]
client = docker.from_env()

ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=f"{base}.0/24", gateway=f"{base}.1")])
net = client.networks.create("pynet", driver="bridge", ipam=ipam, labels={"py": "1"},
                             options={"com.docker.network.bridge.name": bridge})
assert net.attrs["IPAM"]["Config"][0]["Subnet"] == f"{base}.0/24", net.attrs
assert [n.name for n in client.networks.list(filters={"label": "py=1"})] == ["pynet"]
assert client.networks.get("pynet").id == net.id

web = client.containers.run("busybox", ["httpd", "-f", "-p", "80", "-h", "/etc"], detach=True,
                            name="pyweb", ports={"80/tcp": None})
web.reload()
binding = web.ports["80/tcp"][0]
assert binding["HostIp"] == "0.0.0.0", web.ports
port = int(binding["HostPort"])
body = None
for _ in range(100):
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/hostname", timeout=2).read().decode()
        break
    except OSError:
        time.sleep(0.1)
assert body and body.strip() == web.id[:12], body

net.connect(web, aliases=["front"], ipv4_address=f"{base}.40")
net.reload()
assert web.id in [c.id for c in net.containers], net.attrs
web.reload()
ep = web.attrs["NetworkSettings"]["Networks"]["pynet"]
assert ep["IPAddress"] == f"{base}.40" and "front" in ep["Aliases"], ep
out = client.containers.run("busybox", ["nslookup", "front"], network="pynet", remove=True).decode()
assert f"Address: {base}.40" in out, out

try:
    net.remove()
    raise AssertionError("removing a network in use succeeded")
except docker.errors.APIError as e:
    assert "active endpoints" in str(e), e

net.disconnect(web)
net.reload()
assert net.containers == [], net.attrs
web.remove(force=True)
pruned = client.networks.prune()
assert "pynet" in (pruned.get("NetworksDeleted") or []), pruned
assert not client.networks.list(names=["pynet"])
print("ok")
