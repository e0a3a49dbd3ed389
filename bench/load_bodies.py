"""Load for bench/memory.sh: CLIENTS threads each send ROUNDS requests over
a unix socket, cycling through a malformed 2 MB JSON body, a 60 KB header
and a 1 MB body to an endpoint that refuses it. Answers are read and
dropped; errors are ignored (the daemon refusing is the point)."""
import socket
import sys
import threading

sock, clients, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
big = b'{"Image":"' + b"a" * 2_000_000 + b'",]'
reqs = [
    b"POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(big) + big,
    b"GET /containers/json HTTP/1.1\r\nHost: x\r\nX-Junk: " + b"b" * 60000
    + b"\r\nConnection: close\r\n\r\n",
    b"POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n"
    b"Connection: close\r\n\r\n" + b"z" * 1000000,
]


def one(req):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    try:
        s.connect(sock)
        s.sendall(req)
        while s.recv(65536):
            pass
    except OSError:
        pass
    finally:
        s.close()


def worker():
    for i in range(rounds):
        one(reqs[i % len(reqs)])


threads = [threading.Thread(target=worker) for _ in range(clients)]
for t in threads:
    t.start()
for t in threads:
    t.join()
