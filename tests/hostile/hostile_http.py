#!/usr/bin/python3
"""A hostile client against a real `semid serve` (issue 13): raw sockets, every route, framing
attacks, malformed and oversized bodies, wrong types, bad keys, slow and parked clients. Every case
must get its expected answer (never a 5xx, never a hang) and the server must keep answering
/healthz after each; the items written before the campaign must be exactly as they were after it.

Usage: hostile_http.py SEMID_BINARY"""
import json
import os
import random
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture import free_port, small_model  # noqa: E402

SEMID = sys.argv[1]
KEY = "hostile-test-key"
DIM = 4
work = tempfile.mkdtemp(prefix="semid-hostile-")
cases = failures = 0


def exchange(raw, timeout=5.0, read_all=False):
    """Sends raw bytes on a fresh connection; returns (status or None, headers, body, closed)."""
    s = socket.create_connection(("127.0.0.1", PORT), timeout=timeout)
    try:
        if raw:
            s.sendall(raw)
        data = b""
        closed = False
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            data += chunk
            if not read_all and complete(data):
                # Did the server close after answering? (A short wait for the end of stream.)
                s.settimeout(0.5)
                try:
                    closed = s.recv(1) == b""
                except (socket.timeout, ConnectionResetError):
                    pass
                break
        return parse(data) + (closed,)
    finally:
        s.close()


def complete(data):
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return True


def parse(data):
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        return None, {}, body
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower().decode()] = value.strip().decode(errors="replace")
    return status, headers, body


def request(method, path, body=b"", headers=None, key=KEY, version="HTTP/1.1"):
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    elif isinstance(body, str):
        body = body.encode()
    h = {"Host": "127.0.0.1", "Content-Type": "application/json", "Connection": "close"}
    if key:
        h["api-key"] = key
    if body or method in ("POST", "PUT"):
        h["Content-Length"] = str(len(body))
    h.update(headers or {})
    head = f"{method} {path} {version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items() if v is not None)
    return head.encode() + b"\r\n" + body


def check(name, raw, expect, code=None, closed=None, timeout=5.0):
    """One case: the status must be in `expect` (None: no HTTP answer, the connection closed)."""
    global cases, failures
    cases += 1
    status, headers, body, was_closed = exchange(raw, timeout)
    problems = []
    if status not in expect:
        problems.append(f"status {status}, expected {sorted(map(str, expect))}")
    if status is not None and status >= 500 and status != 503:
        problems.append("a 5xx")
    if code is not None and status is not None:
        try:
            got = json.loads(body)["error"]["code"]
        except (ValueError, KeyError, TypeError):
            got = None
        if got != code:
            problems.append(f"error code {got!r}, expected {code!r}")
    if closed is not None and was_closed != closed:
        problems.append(f"connection closed = {was_closed}, expected {closed}")
    if not alive():
        problems.append("the server stopped answering /healthz")
    if problems:
        failures += 1
        print(f"FAIL {name}: {'; '.join(problems)}; body {body[:200]!r}")


def alive():
    status, _, _, _ = exchange(request("GET", "/healthz", key=None), timeout=5.0)
    return status == 200


# ---- the server ----------------------------------------------------------------------------
rng = random.Random(13)
small_model(SEMID, work, DIM, 300, 8, 13)
PORT = free_port()
server = subprocess.Popen([SEMID, "serve", "--data-dir", f"{work}/store", "--port", str(PORT),
                           "--api-key", KEY, "--no-access-log", "--body-limit", "65536",
                           "--max-response-bytes", "200000", "--read-timeout", "2",
                           "--idle-timeout", "1"],
                          stdout=subprocess.DEVNULL, stderr=open(f"{work}/server.log", "w"))
try:
    for _ in range(300):
        try:
            if exchange(request("GET", "/readyz", key=None), 1.0)[0] == 200:
                break
        except OSError:
            pass
        time.sleep(0.05)
    C = "/v1/collections/h"
    assert exchange(request("PUT", C, {"model": f"{work}/m.safetensors"}))[0] == 201
    items = [{"id": i, "vector": [rng.random() for _ in range(DIM)], "payload": {"n": i}}
             for i in range(50)]
    assert exchange(request("PUT", C + "/items", {"items": items}))[0] == 200
    before = json.loads(exchange(request("POST", C + "/items/retrieve",
                                         {"ids": list(range(50)), "with_vector": True}))[2])

    v = [0.1, 0.2, 0.3, 0.4]
    # Every route with a valid request first (the campaign's reference answers).
    routes = [("GET", "/healthz", None), ("GET", "/readyz", None), ("GET", "/metrics", None),
              ("GET", "/v1/collections", None), ("GET", C, None),
              ("POST", C + "/items/retrieve", {"ids": [1, 2]}), ("GET", C + "/items/1", None),
              ("GET", C + "/items/1/sid", None), ("GET", C + "/items/1/reconstruction", None),
              ("POST", C + "/items/1/similar", {"k": 3}), ("POST", C + "/search", {"vector": v}),
              ("POST", C + "/encode", {"vector": v}), ("POST", C + "/trie/next", {"prefix": []}),
              ("POST", C + "/trie/items", {"limit": 5}), ("GET", C + "/snapshots", None)]
    for method, path, body in routes:
        check(f"valid {method} {path}", request(method, path, body or b""), {200})

    body_routes = [("PUT", C + "/items"), ("POST", C + "/items/retrieve"),
                   ("POST", C + "/items/delete"), ("POST", C + "/items/1/similar"),
                   ("POST", C + "/search"), ("POST", C + "/encode"), ("POST", C + "/trie/next"),
                   ("POST", C + "/trie/items"), ("POST", C + "/trie/resolve"),
                   ("PUT", "/v1/collections/h2")]
    bad_bodies = {
        "not JSON": (b"{nope", {400}, "invalid_json"),
        "an array": (b"[1, 2]", {400}, "invalid_field"),
        "a NUL byte": (b'{"k": 1}\x00garbage', {400}, "invalid_json"),
        "a repeated key": (b'{"k": 1, "k": 2}', {400}, "invalid_json"),
        "deep nesting": (b'{"a": ' + b"[" * 200 + b"]" * 200 + b"}", {400}, "invalid_json"),
        "an unknown field": (b'{"surely_unknown": 1}', {400, 422}, None),
        "invalid UTF-8": (b'{"k": "\xff\xfe"}', {400}, "invalid_json"),
        "a huge number": (b'{"k": 1e999999}', {400, 422}, None),
        "truncated": (b'{"ids": [1, 2', {400}, "invalid_json"),
    }
    for method, path in body_routes:
        for label, (body, expect, code) in bad_bodies.items():
            check(f"{method} {path} with {label}", request(method, path, body), expect, code)
        check(f"{method} {path} as text/plain",
              request(method, path, b"{}", {"Content-Type": "text/plain"}), {415})
        check(f"{method} {path} without a key", request(method, path, b"{}", key=None), {401})
        check(f"{method} {path} with a wrong key", request(method, path, b"{}", key="wrong"), {403})
        check(f"{method} {path} over the body limit",
              request(method, path, b'{"a": "' + b"x" * 70000 + b'"}'), {413}, closed=True)

    wrong_types = [
        (C + "/search", {"vector": "nope"}), (C + "/search", {"vector": [1, 2]}),
        (C + "/search", {"vector": [1, 2, 3, float("nan")]}), (C + "/search", {"vector": v, "k": -1}),
        (C + "/search", {"vector": v, "k": 10 ** 30}), (C + "/search", {"vector": v, "k": 1.5}),
        (C + "/search", {"vector": v, "mode": "nope"}),
        (C + "/search", {"vector": v, "vectors": [v]}), (C + "/search", {"vector": v, "filter": 3}),
        (C + "/items/retrieve", {"ids": [-1]}), (C + "/items/retrieve", {"ids": [2 ** 64]}),
        (C + "/items/retrieve", {"ids": "1"}), (C + "/items/retrieve", {"ids": [1.5]}),
        (C + "/items/retrieve", {"ids": list(range(20000))}),
        (C + "/trie/next", {"prefix": [99]}), (C + "/trie/next", {"prefix": [1, 2, 3]}),
        (C + "/trie/next", {"prefix": [-1]}), (C + "/trie/next", {"prefixes": "x"}),
        (C + "/trie/items", {"cursor": "zz"}), (C + "/trie/items", {"cursor": "00" * 40}),
        (C + "/trie/items", {"limit": 0}), (C + "/trie/items", {"limit": 10 ** 9}),
        (C + "/trie/resolve", {"sid": [1]}), (C + "/trie/resolve", {"sid": [1, 2], "collision_suffix": -3}),
        (C + "/encode", {"vector": [1e39, 0, 0, 0]}), (C + "/items/1/similar", {"k": "3"}),
        (C + "/items/delete", {"ids": [[1]]}),
    ]
    for path, body in wrong_types:
        check(f"POST {path} {json.dumps(body)[:60]}", request("POST", path, json.dumps(body)),
              {400, 404, 413, 422})
    bad_items = [{"items": [{"id": 1}]}, {"items": [{"id": 1, "vector": [1]}]},
                 {"items": [{"id": -5, "vector": v}]}, {"items": "x"}, {"items": [None]},
                 {"items": [{"id": 1, "vector": v, "payload": "x" * 2000000}]},
                 {"items": [{"id": 1, "vector": [float("inf")] * 4}]}]
    for body in bad_items:
        check(f"PUT items {json.dumps(body)[:60]}",
              request("PUT", C + "/items", json.dumps(body)[:60000]), {200, 400, 413, 422})

    # Models and training data that are no regular files (issue 13.2): a FIFO blocked workers.
    fifo = f"{work}/fifo"
    os.mkfifo(fifo)
    for name, body in {"a FIFO model": {"model": fifo}, "a directory model": {"model": work},
                       "a missing model": {"model": f"{work}/none.safetensors"},
                       "/dev/zero as model": {"model": "/dev/zero"},
                       "a FIFO to train on": {"train": {"data": fifo + ".fvecs"}},
                       "a relative path": {"model": "../../etc/passwd"}}.items():
        if name == "a FIFO to train on":
            os.mkfifo(fifo + ".fvecs")
        check(f"PUT a collection with {name}", request("PUT", "/v1/collections/f", body),
              {400, 404, 409, 422}, timeout=10)

    # Unknown routes and methods: without a key 401 (routes are not disclosed), with one 404/405.
    for path in ["/nope", "/v1/collections/h/nope", "/v1/collections/h/items/1/nope",
                 "/v1/collections/" + "a" * 100, "/v1/collections/..%2f..", "/v1/collections/h/items/x",
                 "/v1/collections/h/items/99999999999999999999", "/%00", "/v1//collections"]:
        check(f"GET {path} without a key", request("GET", path, key=None), {401})
        check(f"GET {path}", request("GET", path), {400, 404, 422})
    for method, path in [("DELETE", "/healthz"), ("PATCH", C), ("POST", C), ("GET", C + "/search"),
                         ("PUT", C + "/search"), ("TRACE", "/"), ("CONNECT", "127.0.0.1:1")]:
        check(f"{method} {path}", request(method, path), {400, 404, 405})

    # Framing (issue 13.4: request smuggling) and malformed HTTP.
    smuggled = b"5\r\nhello\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n"
    for coding in ["chunked, identity", "gzip, chunked", "identity", "chunked\x0b", "xchunked"]:
        raw = (f"POST {C}/search HTTP/1.1\r\nHost: h\r\napi-key: {KEY}\r\n"
               f"Transfer-Encoding: {coding}\r\n\r\n").encode() + smuggled
        check(f"Transfer-Encoding: {coding!r}", raw, {400}, closed=True)
    framing = {
        "two different Content-Lengths": f"POST {C}/search HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{{}}",
        "Content-Length and chunked": f"POST {C}/search HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "a negative Content-Length": f"POST {C}/search HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n",
        "a Content-Length in hex": f"POST {C}/search HTTP/1.1\r\nHost: h\r\nContent-Length: 0x10\r\n\r\n",
        "a huge Content-Length": f"POST {C}/search HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n",
        "a bad chunk size": f"POST {C}/search HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "garbage": "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 (a TLS hello)\r\n\r\n",
        "an HTTP/2 preface": "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        "HTTP/0.9": "GET /healthz\r\n\r\n",
        "HTTP/3.0": "GET /healthz HTTP/3.0\r\nHost: h\r\n\r\n",
        "a header without a colon": "GET /healthz HTTP/1.1\r\nHost h\r\n\r\n",
        "a NUL in a header": "GET /healthz HTTP/1.1\r\nHost: h\r\nX-A: a\x00b\r\n\r\n",
        "a space before the colon": "GET /healthz HTTP/1.1\r\nHost : h\r\n\r\n",
        "a method with a space": "G ET /healthz HTTP/1.1\r\nHost: h\r\n\r\n",
        "no target": "GET  HTTP/1.1\r\nHost: h\r\n\r\n",
        "a 20 KB header": "GET /healthz HTTP/1.1\r\nHost: h\r\nX-Big: " + "a" * 20000 + "\r\n\r\n",
        "a 20 KB target": "GET /" + "a" * 20000 + " HTTP/1.1\r\nHost: h\r\n\r\n",
        "10,000 headers": "GET /healthz HTTP/1.1\r\n" + "X: y\r\n" * 10000 + "\r\n",
    }
    for name, raw in framing.items():
        check(name, raw.encode("latin-1"), {None, 400, 404, 413, 431, 505}, timeout=4)
    # RFC 9112 5.2: an obs-fold is rejected or read as a space (Beast does the latter).
    check("obs-fold", b"GET /healthz HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n folded\r\n\r\n",
          {200, 400}, timeout=4)
    check("LF-only line endings", b"GET /healthz HTTP/1.1\nHost: h\n\n", {None, 200, 400}, timeout=4)
    check("a bare CR", b"GET /healthz HTTP/1.1\rHost: h\r\n\r\n", {None, 400}, timeout=4)
    check("pipelined requests", request("GET", "/healthz", key=None,
                                        headers={"Connection": None}) * 3, {200})
    check("Expect: 100-continue with a bad body",
          request("POST", C + "/search", b"{bad", {"Expect": "100-continue"}), {100, 400})
    check("an empty request", b"\r\n\r\n", {None, 400}, timeout=4)

    # Slow and parked clients: cut off by the read and idle timeouts, never holding a worker.
    check("a slowloris header", f"GET /healthz HTTP/1.1\r\nHost: h\r\n".encode(), {None, 400},
          closed=True, timeout=6)
    check("a body that never comes",
          f"POST {C}/search HTTP/1.1\r\nHost: h\r\napi-key: {KEY}\r\nContent-Length: 100\r\n\r\n{{".encode(),
          {None, 400}, closed=True, timeout=6)
    check("a connection that never sends", b"", {None}, closed=True, timeout=6)

    # Answers too large (issue 13.3): 422, never built.
    big = [{"id": 1000 + i, "vector": v, "payload": {"pad": "x" * 20000}} for i in range(3)]
    assert exchange(request("PUT", C + "/items", {"items": big}))[0] == 200
    check("a search whose answer passes the limit",
          request("POST", C + "/search", {"vectors": [v] * 20, "k": 50}), {422}, "response_too_large")
    check("a retrieve whose answer passes the limit",
          request("POST", C + "/items/retrieve", {"ids": [1000, 1001, 1002] * 5}), {422},
          "response_too_large")
    check("trie/items pages under the limit", request("POST", C + "/trie/items",
                                                      {"limit": 100, "with_payload": True}), {200})
    check("deleting the large items", request("POST", C + "/items/delete",
                                              {"ids": [1000, 1001, 1002]}), {200})

    # Random bytes on every route.
    for i in range(40):
        method, path = body_routes[i % len(body_routes)]
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
        check(f"random body {i} on {path}", request(method, path, junk), {400, 413, 415, 422})

    after = json.loads(exchange(request("POST", C + "/items/retrieve",
                                        {"ids": list(range(50)), "with_vector": True}))[2])
    if after["result"]["items"] != before["result"]["items"]:
        failures += 1
        print("FAIL the items written before the campaign changed")
    server.send_signal(15)
    code = server.wait(timeout=20)
    if code != 0:
        failures += 1
        print(f"FAIL the server exited {code} on SIGTERM")
finally:
    if server.poll() is None:
        server.kill()
    shutil.rmtree(work, ignore_errors=True)

print(f"hostile HTTP: {cases} cases, {failures} failures")
sys.exit(1 if failures else 0)
