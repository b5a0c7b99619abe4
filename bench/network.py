"""Networking side by side: the cost of the default network at container start, and the
throughput of a published port (many small requests, one large transfer), orlopd against
dockerd, each engine in a network namespace of its own with the same busybox image.

    .venv/bin/python bench/network.py [--runs N] [--requests N] [--megabytes N]

orlopd publishes with nftables DNAT (127.0.0.1 included, no proxy process); dockerd here runs
with --iptables=false in its namespace, so its published ports go through docker-proxy, the
userland proxy it also uses for 127.0.0.1 by default.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
from daemon_fixture import busybox_archive  # noqa: E402
from engine_run import IMAGE, Dockerd, Orlopd, sh  # noqa: E402

PORT = 18080
HTTPD = "mkdir -p /www && echo small > /www/small && dd if=/dev/urandom of=/www/big bs=1M count={mb} " \
        "2>/dev/null && exec httpd -f -p 80 -h /www"
CLIENT = r"""
import http.client, json, sys, time
host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def get(path):
    c = http.client.HTTPConnection(host, port, timeout=30)
    c.request("GET", path)
    body = c.getresponse().read()
    c.close()
    return len(body)
for _ in range(100):
    try:
        get("/small"); break
    except OSError:
        time.sleep(0.05)
start = time.perf_counter()
for _ in range(count):
    get("/small")
small = time.perf_counter() - start
start = time.perf_counter()
size = get("/big")
big = time.perf_counter() - start
print(json.dumps({"requests_per_s": count / small, "big_mb_per_s": size / 1e6 / big}))
"""


def netns_of(backend) -> str:
    if isinstance(backend, Orlopd):
        return backend.daemon.netns_path
    return f"/proc/{backend.proc.pid}/ns/net"


def start_cost(backend, runs: int) -> dict:
    out = {}
    for network in ("none", "default"):
        flags = ["--network", "none"] if network == "none" else []
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            sh([*backend.cli, "run", "--rm", *flags, IMAGE, "true"], env=backend.env)
            times.append(time.perf_counter() - start)
        out[network] = sorted(times)[len(times) // 2] * 1000
    out["network_cost_ms"] = out["default"] - out["none"]
    return out


def throughput(backend, requests: int, megabytes: int) -> dict:
    cid = sh([*backend.cli, "run", "-d", "-p", f"{PORT}:80", IMAGE, "sh", "-c", HTTPD.format(mb=megabytes)],
             env=backend.env).stdout.strip()
    try:
        address = sh([*backend.cli, "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                       cid], env=backend.env).stdout.strip()
        results = {}
        for label, host, port in (("published 127.0.0.1", "127.0.0.1", PORT), ("container address", address, 80)):
            done = subprocess.run(["nsenter", f"--net={netns_of(backend)}", "--", sys.executable, "-c", CLIENT,
                                   host, str(port), str(requests)], capture_output=True, text=True, timeout=600)
            results[label] = json.loads(done.stdout) if done.returncode == 0 else {"error": done.stderr[-300:]}
        return results
    finally:
        sh([*backend.cli, "rm", "-f", cid], env=backend.env, check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--megabytes", type=int, default=100)
    args = parser.parse_args()
    if os.geteuid() != 0:
        parser.error("needs root")
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    work = tempfile.mkdtemp(prefix="orlop-bench-network-")
    backends = [Orlopd(), Dockerd()]
    report: dict = {"config": vars(args)}
    try:
        archive = busybox_archive(work)
        for backend in backends:
            backend.start(work, archive)
            if backend.unavailable:
                print(f"{backend.name} unavailable: {backend.unavailable}")
        for backend in backends:
            if backend.unavailable:
                continue
            print(f"measuring {backend.name} ...", flush=True)
            report[backend.name] = {"start": start_cost(backend, args.runs),
                                    "throughput": throughput(backend, args.requests, args.megabytes)}
    finally:
        for backend in backends:
            backend.cleanup()
    print("\nengine    start none  start default  network cost   req/s 127.0.0.1  req/s direct  "
          "MB/s 127.0.0.1  MB/s direct")
    for name in ("orlopd", "dockerd"):
        r = report.get(name)
        if not r:
            continue
        s, t = r["start"], r["throughput"]
        pub, direct = t["published 127.0.0.1"], t["container address"]
        print(f"{name:8} {s['none']:9.1f} ms {s['default']:10.1f} ms {s['network_cost_ms']:10.1f} ms "
              f"{pub.get('requests_per_s', 0):14.0f} {direct.get('requests_per_s', 0):13.0f} "
              f"{pub.get('big_mb_per_s', 0):14.0f} {direct.get('big_mb_per_s', 0):12.0f}")
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "network.json"), "w") as f:
        json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
