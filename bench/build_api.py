"""No-change rebuild through the API, without the docker CLI's start-up:
POST /build with the context tar on a unix socket, RUNS times, each answer
read to its end; prints the median wall time in ms (one unmeasured warm-up).

    python3 bench/build_api.py SOCKET CONTEXT_TAR TAG RUNS
"""
import socket
import statistics
import sys
import time


def build(sock_path, data, tag):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock_path)
    s.sendall(
        b"POST /v1.41/build?t=%s HTTP/1.1\r\nHost: localhost\r\n"
        b"Content-Type: application/x-tar\r\nConnection: close\r\n"
        b"Content-Length: %d\r\n\r\n" % (tag.encode(), len(data)) + data
    )
    out = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        out += chunk
    s.close()
    if b" 200 OK" not in out.split(b"\r\n", 1)[0] or b"Successfully built" not in out:
        sys.exit("build_api: the build failed: %r" % out[-300:])


def main():
    sock_path, tar_path, tag, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    data = open(tar_path, "rb").read()
    build(sock_path, data, tag)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        build(sock_path, data, tag)
        times.append((time.perf_counter() - t0) * 1000)
    print("%.1f" % statistics.median(times))


main()
