#!/usr/bin/env python3
"""bench/fcgi_client.py: a small FastCGI load client for what rf-load cannot
send: a real multipart/form-data upload (rf-load's --body is a fixed pattern
with CONTENT_TYPE application/octet-stream).

Closed loop: --connections threads, each on its own keep-alive connection
(FCGI_KEEP_CONN), sends one request at a time until --duration is over. The
request is encoded once (params as rf-load's defaults, the body in STDIN
records of <= 65528 bytes, as nginx and rf-load send), so the client's cost
per request is one sendall of the whole request and the read of the answer.

Output (--json): rf-load's fields: requests, errors, error_breakdown, rps,
latency_us{p50 p90 p99 p999 max mean}, bytes_in. Exit 0 no errors, 1 errors,
2 usage or connect failure at start. Stdlib only.
"""

import argparse
import json
import os
import random
import socket
import struct
import sys
import threading
import time

FCGI_BEGIN, FCGI_END, FCGI_PARAMS, FCGI_STDIN, FCGI_STDOUT, FCGI_STDERR = 1, 3, 4, 5, 6, 7
CHUNK = 65528


def record(rtype, rid, content):
    pad = (-len(content)) % 8
    return struct.pack(">BBHHBx", 1, rtype, rid, len(content), pad) + content + b"\0" * pad


def nv(name, value):
    out = b""
    for s in (name, value):
        n = len(s)
        out += struct.pack(">B", n) if n < 128 else struct.pack(">I", n | 0x80000000)
    return out + name + value


def stream(rtype, rid, data):
    out = [record(rtype, rid, data[i:i + CHUNK]) for i in range(0, len(data), CHUNK)]
    return b"".join(out) + record(rtype, rid, b"")


def multipart(size, seed=1):
    boundary = "----ringfpmBench%08x" % seed
    data = random.Random(seed).randbytes(size)
    head = ('--%s\r\nContent-Disposition: form-data; name="file"; filename="data.bin"\r\n'
            'Content-Type: application/octet-stream\r\n\r\n' % boundary).encode()
    tail = ("\r\n--%s--\r\n" % boundary).encode()
    return "multipart/form-data; boundary=" + boundary, head + data + tail


def encode_request(script, uri, ctype, body):
    path, _, query = uri.partition("?")
    docroot = script[:-len(path)] if script.endswith(path) else os.path.dirname(script)
    params = [
        ("SCRIPT_FILENAME", script), ("QUERY_STRING", query), ("REQUEST_METHOD", "POST"),
        ("CONTENT_TYPE", ctype), ("CONTENT_LENGTH", str(len(body))), ("SCRIPT_NAME", path),
        ("REQUEST_URI", uri), ("DOCUMENT_URI", path), ("DOCUMENT_ROOT", docroot),
        ("SERVER_PROTOCOL", "HTTP/1.1"), ("REQUEST_SCHEME", "http"),
        ("GATEWAY_INTERFACE", "CGI/1.1"), ("SERVER_SOFTWARE", "nginx/1.22.1"),
        ("REMOTE_ADDR", "127.0.0.1"), ("REMOTE_PORT", "50000"), ("SERVER_ADDR", "127.0.0.1"),
        ("SERVER_PORT", "80"), ("SERVER_NAME", "localhost"), ("REDIRECT_STATUS", "200"),
        ("PATH_INFO", ""), ("HTTP_HOST", "localhost"), ("HTTP_USER_AGENT", "bench/fcgi_client"),
    ]
    p = b"".join(nv(k.encode(), v.encode()) for k, v in params)
    begin = record(FCGI_BEGIN, 1, struct.pack(">HB5x", 1, 1))  # RESPONDER, KEEP_CONN
    return begin + stream(FCGI_PARAMS, 1, p) + stream(FCGI_STDIN, 1, body)


def connect(target, timeout):
    kind, _, addr = target.partition(":")
    if kind == "unix":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(addr)
    elif kind == "tcp":
        host, _, port = addr.rpartition(":")
        s = socket.socket(socket.AF_INET6 if host.startswith("[") else socket.AF_INET,
                          socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect((host.strip("[]"), int(port)))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    else:
        raise ValueError("target must be tcp:HOST:PORT or unix:/path")
    return s


class Reader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()

    def need(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buf)))
            if not chunk:
                raise ConnectionResetError("peer closed")
            self.buf += chunk
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def response(self):
        """(stdout bytes, protocol status) of request 1."""
        out = []
        while True:
            _, rtype, _, clen, pad = struct.unpack(">BBHHBx", self.need(8))
            content = self.need(clen + pad)[:clen]
            if rtype == FCGI_STDOUT:
                out.append(content)
            elif rtype == FCGI_END:
                return b"".join(out), content[4]
            elif rtype != FCGI_STDERR:
                raise ValueError("unexpected record type %d" % rtype)


def worker(args, req, expect, deadline, res):
    lat, errs, nbytes = res["lat"], res["err"], 0
    sock = rd = None
    while time.monotonic() < deadline:
        try:
            if sock is None:
                sock = connect(args.target, args.timeout)
                rd = Reader(sock)
            t0 = time.monotonic()
            sock.sendall(req)
            out, status = rd.response()
            dt = time.monotonic() - t0
            lat.append(dt)
            nbytes += len(out)
            if status != 0:
                errs["status"] += 1
            elif expect and expect not in out:
                errs["expect"] += 1
            else:
                res["ok"] += 1
        except socket.timeout:
            errs["timeout"] += 1
            sock.close() if sock else None
            sock = None
        except OSError:
            errs["connect" if sock is None else "reset"] += 1
            if sock is not None:
                sock.close()
            sock = None
            time.sleep(0.01)
        except ValueError:
            errs["protocol"] += 1
            sock.close()
            sock = None
    if sock is not None:
        sock.close()
    res["bytes"] = nbytes


def quantile(sorted_vals, q):
    if not sorted_vals:
        return 0.0
    return sorted_vals[min(len(sorted_vals) - 1, int(q * len(sorted_vals)))]


def main(argv):
    ap = argparse.ArgumentParser(prog="bench/fcgi_client.py", description=__doc__.split("\n")[0])
    ap.add_argument("--target", required=True)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--script", required=True)
    ap.add_argument("--uri", required=True)
    ap.add_argument("--upload", default="10m", help="multipart file size (k/m suffix)")
    ap.add_argument("--expect", default=None)
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    mult = {"k": 1024, "m": 1024 * 1024}.get(a.upload[-1:].lower(), 1)
    size = int(a.upload[:-1] if a.upload[-1:].isalpha() else a.upload) * mult
    ctype, body = multipart(size)
    req = encode_request(a.script, a.uri, ctype, body)
    expect = a.expect.encode() if a.expect else None
    results = [{"lat": [], "ok": 0, "bytes": 0,
                "err": dict.fromkeys(("connect", "reset", "protocol", "status", "expect",
                                      "timeout", "idle"), 0)} for _ in range(a.connections)]
    t0 = time.monotonic()
    deadline = t0 + a.duration
    threads = [threading.Thread(target=worker, args=(a, req, expect, deadline, r), daemon=True)
               for r in results]
    for t in threads:
        t.start()
    for t in threads:
        t.join(a.duration + a.timeout + 5)
    secs = time.monotonic() - t0
    lat = sorted(x for r in results for x in r["lat"])
    eb = {k: sum(r["err"][k] for r in results) for k in results[0]["err"]}
    ok = sum(r["ok"] for r in results)
    errors = sum(eb.values())
    us = lambda v: round(v * 1e6, 1)
    out = {"target": a.target, "threads": a.connections, "connections": a.connections,
           "depth": 1, "mode": "keep-conn", "rate": 0, "body": len(body), "duration": secs,
           "requests": ok, "errors": errors, "error_breakdown": eb, "connect_retries": 0,
           "unsent": 0, "rps": ok / secs if secs > 0 else 0,
           "latency_us": {"p50": us(quantile(lat, 0.5)), "p90": us(quantile(lat, 0.9)),
                          "p99": us(quantile(lat, 0.99)), "p999": us(quantile(lat, 0.999)),
                          "max": us(lat[-1]) if lat else 0,
                          "mean": us(sum(lat) / len(lat)) if lat else 0},
           "bytes_in": sum(r["bytes"] for r in results), "idle": 0, "idle_ok": 0,
           "idle_failed": 0, "upload_bytes": size}
    if a.json:
        print(json.dumps(out))
    else:
        print("%d requests in %.2f s: %.1f req/s, %d errors %s, p50 %.0f us, p99 %.0f us"
              % (ok, secs, out["rps"], errors, eb, out["latency_us"]["p50"],
                 out["latency_us"]["p99"]))
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
