#!/usr/bin/python3
"""SIGKILL the real `semid serve` while clients write to it over HTTP (issue 13), KILLS times, and
check after each restart that every acknowledged write is there exactly: upserted items with their
vectors and payloads, replaced items in their last acknowledged version, deleted items gone. The
batch in flight at the kill is all there or not at all (a batch is atomic). Without --sync: a 2xx
means the batch is in RocksDB's write-ahead log, which survives the process dying.

Usage: http_crash.py SEMID_BINARY [KILLS]"""
import json
import os.path
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture import free_port, small_model  # noqa: E402

SEMID = sys.argv[1]
KILLS = int(sys.argv[2]) if len(sys.argv) > 2 else 24
DIM = 8
UNIVERSE = 400  # ids are reused, so batches replace and delete acknowledged items
work = tempfile.mkdtemp(prefix="semid-crash-")


def vector(id_, version):
    # Multiples of 1/1024 are exact in float32 and in JSON.
    r = random.Random(id_ * 100003 + version)
    return [r.randrange(-1024, 1024) / 1024 for _ in range(DIM)]


def f32(values):
    """The float32 values JSON numbers stand for (semid prints the shortest that reads back)."""
    return list(struct.unpack(f"<{len(values)}f", struct.pack(f"<{len(values)}f", *values)))


def call(port, method, path, body=None, timeout=10):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, json.loads(r.read())


rng = random.Random(7)
small_model(SEMID, work, DIM, 500, 16, 7)

acked = {}  # id -> the version of its last acknowledged upsert, or None when deleted
pending = {}
version = 0
failures = 0
port = free_port()
C = "/v1/collections/crash"
try:
    for kill in range(KILLS + 1):
        server = subprocess.Popen([SEMID, "serve", "--data-dir", f"{work}/store", "--port",
                                   str(port), "--no-access-log"], stdout=subprocess.DEVNULL,
                                  stderr=open(f"{work}/server.log", "a"))
        deadline = time.time() + 30
        while True:
            try:
                if call(port, "GET", "/readyz", timeout=1)[0] == 200:
                    break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if time.time() > deadline:
                raise SystemExit("the server did not become ready after a restart")
            time.sleep(0.02)
        if kill == 0:
            call(port, "PUT", C, {"model": f"{work}/m.safetensors"})
        # Everything acknowledged before the kill is there, exactly.
        ids = list(range(UNIVERSE))
        _, got = call(port, "POST", C + "/items/retrieve", {"ids": ids, "with_vector": True})
        found = {item["id"]: item for item in got["result"]["items"]}
        in_flight = pending.get("batch")
        flight_ids = {i for i, _ in in_flight["items"]} if in_flight else set()
        for i in ids:
            expected = acked.get(i)
            item = found.get(i)
            if i in flight_ids:
                continue  # checked below, as a whole
            if expected is None:
                if item is not None:
                    failures += 1
                    print(f"FAIL kill {kill}: item {i} should be absent, found version "
                          f"{item['payload']['version']}")
            elif item is None or item["payload"]["version"] != expected or (
                    f32(item["vector"]) != vector(i, expected)):
                failures += 1
                print(f"FAIL kill {kill}: item {i} should be version {expected}, found {item}")
        if in_flight:
            # The batch in flight at the kill: all of it applied, or none of it.
            def state_is(i, v):
                item = found.get(i)
                if v is None:
                    return item is None
                return item is not None and item["payload"]["version"] == v and (
                    f32(item["vector"]) == vector(i, v))
            now = [state_is(i, v) for i, v in in_flight["items"]]
            then = [state_is(i, acked.get(i)) for i, _ in in_flight["items"]]
            if all(now):
                for i, v in in_flight["items"]:
                    acked[i] = v
            elif not all(then):
                failures += 1
                print(f"FAIL kill {kill}: the batch in flight is partly applied")
        if kill == KILLS:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
            break

        # Write until killed: batches of upserts (new and replacing) and deletes.
        pending = {}
        stop = threading.Event()

        def writer():
            global version
            while not stop.is_set():
                version += 1
                if rng.random() < 0.25:
                    ids = rng.sample(range(UNIVERSE), 5)
                    pending["batch"] = {"items": [(i, None) for i in ids]}
                    path, body = C + "/items/delete", {"ids": ids}
                else:
                    ids = rng.sample(range(UNIVERSE), rng.randrange(1, 40))
                    pending["batch"] = {"items": [(i, version) for i in ids]}
                    path, body = C + "/items", {"items": [
                        {"id": i, "vector": vector(i, version), "payload": {"version": version}}
                        for i in ids]}
                try:
                    status, reply = call(port, "PUT" if path.endswith("/items") else "POST", path,
                                         body)
                except (urllib.error.URLError, ConnectionError, OSError):
                    return  # killed mid-request: pending["batch"] is in flight
                if status == 200:
                    for i, v in pending["batch"]["items"]:
                        acked[i] = v
                    pending.clear()

        t = threading.Thread(target=writer)
        t.start()
        time.sleep(rng.uniform(0.2, 0.7))
        server.send_signal(signal.SIGKILL)
        server.wait()
        stop.set()
        t.join()
finally:
    if server.poll() is None:
        server.kill()
    shutil.rmtree(work, ignore_errors=True)

print(f"HTTP crash test: {KILLS} SIGKILLs during writes, {len([v for v in acked.values() if v])} "
      f"items acknowledged at the end, {failures} failures")
sys.exit(1 if failures else 0)
