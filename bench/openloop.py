#!/usr/bin/env python3
"""bench/openloop.py: an open-loop FastCGI client that logs every request,
for bench/run's overload and pm phases (rf-load gives one latency histogram
per run; these phases need latency over time).

Requests are due on a fixed schedule (--segments "SECONDS:RATE,..."), each
on a new connection (no KEEP_CONN, as nginx without upstream keepalive),
whether or not earlier ones have been answered. Latency runs from when a
request was due (no coordinated omission). A connection is opened only for
a request and closed when it is answered, so an accepted connection always
carries a request (an idle one would hold a php-fpm worker). Outcomes:

  ok       END_REQUEST, protocol status 0, --expect found
  503      a `Status: 503` response (ringfpm's answer when its queue is full)
  status   END_REQUEST with a protocol status != 0, or other output
  connect  connect failed: refused, or EAGAIN on a unix socket whose backlog
           is full (nginx answers 502 then; this client does not retry)
  timeout  not answered within --timeout of its due time (the connection
           is closed then: the client has gone away)
  reset    the server closed before END_REQUEST
  client   this client could not open a socket (out of fds or ports):
           the run is not valid for that request

Over TCP the sockets are bound to 127.0.0.2 … 127.0.0.9 in turn (the
server listens on 127.0.0.1; all of 127/8 is local), so tens of thousands
of connections waiting in SYN retransmits do not run out of ephemeral ports.

Output (stdout, JSON): the schedule, counts, and `requests`: one
[due_s, latency_s or null, outcome] per request, in due order. One epoll
loop per process; --procs N forks N-1 more, request i going to process
i % N (each process has its own RLIMIT_NOFILE of connections; they share
the start time). Stdlib only. Exit 0, or 2 on usage errors.
"""

import argparse
import collections
import errno
import json
import os
import select
import socket
import struct
import sys
import tempfile
import time

OUTCOMES = ("ok", "503", "status", "connect", "timeout", "reset", "client")
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
SOURCES = 8   # TCP: source addresses 127.0.0.2..9, 8 times the ephemeral ports


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fcgi_client import nv, record  # noqa: E402  (FastCGI framing, one copy)


def encode_request(script, uri):
    path, _, query = uri.partition("?")
    docroot = script[:-len(path)] if script.endswith(path) else os.path.dirname(script)
    params = [
        ("SCRIPT_FILENAME", script), ("QUERY_STRING", query), ("REQUEST_METHOD", "GET"),
        ("CONTENT_TYPE", ""), ("CONTENT_LENGTH", ""), ("SCRIPT_NAME", path),
        ("REQUEST_URI", uri), ("DOCUMENT_URI", path), ("DOCUMENT_ROOT", docroot),
        ("SERVER_PROTOCOL", "HTTP/1.1"), ("REQUEST_SCHEME", "http"),
        ("GATEWAY_INTERFACE", "CGI/1.1"), ("SERVER_SOFTWARE", "nginx/1.22.1"),
        ("REMOTE_ADDR", "127.0.0.1"), ("REMOTE_PORT", "50000"), ("SERVER_ADDR", "127.0.0.1"),
        ("SERVER_PORT", "80"), ("SERVER_NAME", "localhost"), ("REDIRECT_STATUS", "200"),
        ("PATH_INFO", ""), ("HTTP_HOST", "localhost"), ("HTTP_USER_AGENT", "bench/openloop"),
    ]
    p = b"".join(nv(k.encode(), v.encode()) for k, v in params)
    return (record(1, 1, struct.pack(">HB5x", 1, 0)) + record(4, 1, p) + record(4, 1, b"")
            + record(5, 1, b""))


def schedule(segments):
    """Due times (s from start) of every request."""
    due, t = [], 0.0
    for dur, rate in segments:
        n = int(round(dur * rate))
        due += [t + k / rate for k in range(n)]
        t += dur
    return due, t


class Req:
    __slots__ = ("idx", "due", "sock", "buf", "out", "done")

    def __init__(self, idx, due):
        self.idx, self.due = idx, due
        self.sock = None
        self.buf = bytearray()
        self.out = []
        self.done = False


def parse(req):
    """(finished, outcome) from what req received so far."""
    b = req.buf
    off = 0
    while len(b) - off >= 8:
        _, rtype, _, clen, pad = struct.unpack_from(">BBHHBx", b, off)
        if len(b) - off < 8 + clen + pad:
            break
        content = bytes(b[off + 8:off + 8 + clen])
        off += 8 + clen + pad
        if rtype == 6:
            req.out.append(content)
        elif rtype == 3:
            del b[:off]
            return True, content[4] if len(content) >= 5 else 1
    del b[:off]
    return False, None


def run_shard(a, family, sockaddr, dues, t0, shard, nshards):
    """The event loop over requests idx % nshards == shard: {idx: [lat, outcome]}."""
    loopback = family == socket.AF_INET and sockaddr[0].startswith("127.")
    payload = encode_request(a.script, a.uri)
    expect = a.expect.encode() if a.expect else None
    mine = list(range(shard, len(dues), nshards))
    lat = {}
    outcome = {}
    ep = select.epoll()
    by_fd = {}
    pending = collections.deque()   # started, not finished, in due order
    nxt = 0

    def finish(req, what, now):
        if req.done:
            return
        req.done = True
        outcome[req.idx] = what
        if what in ("ok", "503", "status"):
            lat[req.idx] = round(now - t0 - req.due, 6)
        if req.sock is not None:
            fd = req.sock.fileno()
            by_fd.pop(fd, None)
            try:
                ep.unregister(fd)
            except (OSError, ValueError):
                pass
            if what in ("ok", "503", "status"):
                # Answered: close with a RST, so neither side keeps a
                # TIME_WAIT whose 4-tuple a later connect could hit (the
                # kernel would drop that SYN: a 1 s retransmit in the figures).
                # A request given up (timeout) is closed normally, as nginx does.
                try:
                    req.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                        struct.pack("ii", 1, 0))
                except OSError:
                    pass
            req.sock.close()
            req.sock = None

    while True:
        now = time.monotonic()
        while nxt < len(mine) and now - t0 >= dues[mine[nxt]]:
            idx = mine[nxt]
            req = Req(idx, dues[idx])
            nxt += 1
            try:
                s = socket.socket(family, socket.SOCK_STREAM)
            except OSError:
                finish(req, "client", now)
                continue
            s.setblocking(False)
            try:
                if family == socket.AF_INET:
                    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    if loopback:
                        s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                        s.bind(("127.0.0.%d" % (2 + req.idx % SOURCES), 0))
                rc = s.connect_ex(sockaddr)
            except OSError as e:
                rc = e.errno
            if rc not in (0, errno.EINPROGRESS):
                s.close()
                finish(req, "client" if rc in (errno.EADDRNOTAVAIL, errno.EMFILE,
                                               errno.ENFILE, errno.ENOBUFS) else "connect", now)
                continue
            req.sock = s
            by_fd[s.fileno()] = req
            pending.append(req)
            ep.register(s.fileno(), select.EPOLLOUT)
        while pending and (pending[0].done or now - t0 - pending[0].due > a.timeout):
            r = pending.popleft()
            if not r.done:
                finish(r, "timeout", now)
        if nxt >= len(mine) and not pending:
            break
        wait = 0.05
        if nxt < len(mine):
            wait = min(wait, max(0.0, t0 + dues[mine[nxt]] - time.monotonic()))
        for fd, ev in ep.poll(wait, 1024):
            req = by_fd.get(fd)
            if req is None or req.done:
                continue
            now = time.monotonic()
            s = req.sock
            if ev & select.EPOLLOUT:
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    finish(req, "connect", now)
                    continue
                try:
                    s.send(payload)
                except OSError:
                    finish(req, "reset", now)
                    continue
                ep.modify(fd, select.EPOLLIN)
                continue
            try:
                data = s.recv(65536)
            except OSError:
                finish(req, "reset", now)
                continue
            if not data:
                finish(req, "reset", now)
                continue
            req.buf += data
            done, pstatus = parse(req)
            if done:
                out = b"".join(req.out)
                if pstatus == 0 and (expect is None or expect in out):
                    finish(req, "ok", now)
                elif out.startswith(b"Status: 503") or b"\nStatus: 503" in out:
                    finish(req, "503", now)
                else:
                    finish(req, "status", now)
    return {i: [lat.get(i), outcome.get(i)] for i in mine}


def main(argv):
    ap = argparse.ArgumentParser(prog="bench/openloop.py", description=__doc__.split("\n")[0])
    ap.add_argument("--target", required=True, help="tcp:HOST:PORT or unix:/path")
    ap.add_argument("--segments", required=True, help="SECONDS:RATE,... e.g. 3:400,10:3200")
    ap.add_argument("--script", required=True)
    ap.add_argument("--uri", required=True)
    ap.add_argument("--expect", default=None)
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--procs", type=int, default=1,
                    help="processes sharing the schedule (request i goes to process i %% N): "
                         "each has its own RLIMIT_NOFILE worth of connections")
    a = ap.parse_args(argv)
    try:
        segments = [(float(d), float(r)) for d, r in
                    (s.split(":") for s in a.segments.split(",") if s)]
    except ValueError:
        ap.error("--segments: SECONDS:RATE,...")
    if a.procs < 1:
        ap.error("--procs >= 1")
    kind, _, addr = a.target.partition(":")
    if kind == "unix":
        family, sockaddr = socket.AF_UNIX, addr
    elif kind == "tcp":
        host, _, port = addr.rpartition(":")
        family, sockaddr = socket.AF_INET, (host, int(port))
    else:
        ap.error("--target: tcp:HOST:PORT or unix:/path")
    dues, total = schedule(segments)
    # CLOCK_MONOTONIC is one clock for every process: the shards share t0.
    t0 = time.monotonic() + 0.1
    kids = []
    for k in range(1, a.procs):
        fd, path = tempfile.mkstemp(prefix="openloop-")
        os.close(fd)
        pid = os.fork()
        if pid == 0:
            try:
                part = run_shard(a, family, sockaddr, dues, t0, k, a.procs)
                with open(path, "w") as f:
                    json.dump(part, f)
            finally:
                os._exit(0)
        kids.append((pid, path))
    merged = run_shard(a, family, sockaddr, dues, t0, 0, a.procs)
    for pid, path in kids:
        os.waitpid(pid, 0)
        try:
            with open(path) as f:
                merged.update({int(i): v for i, v in json.load(f).items()})
        except (OSError, ValueError):
            pass
        os.unlink(path)
    counts = collections.Counter(v[1] for v in merged.values())
    missing = len(dues) - len(merged)
    res = {"target": a.target, "segments": segments, "timeout": a.timeout,
           "issued": len(dues), "counts": {k: counts.get(k, 0) for k in OUTCOMES},
           "missing": missing, "procs": a.procs,
           "wall_s": round(time.monotonic() - t0, 3), "duration": total,
           "requests": [[round(d, 6)] + merged.get(i, [None, "client"])
                        for i, d in enumerate(dues)]}
    json.dump(res, sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
