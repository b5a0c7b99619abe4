"""Image builds side by side on a warm cache: a Dockerfile with a COPY and five RUN steps,
rebuilt with nothing changed, and rebuilt after the copied file changed (the COPY and the five
RUNs run again), by

- the orlop CLI and the docker CLI's classic builder (DOCKER_BUILDKIT=0) against orlopd,
- the docker CLI's classic builder and BuildKit against dockerd (20.10, in a network namespace
  of its own; BuildKit needs the buildx plugin, which this machine's docker CLI may lack),
- podman build (buildah, with its layer cache: --layers, the default).

    .venv/bin/python bench/build.py [--runs N] [--warmup N]

Each engine gets its own copy of the context, builds it once cold (timed once), then hyperfine
times the two rebuilds (medians, and ratios to docker's classic builder against dockerd). The
changed rebuild writes new content into the copied file before each run (hyperfine --prepare).
Needs root. Results go to bench/results/build.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
from daemon_fixture import busybox_archive  # noqa: E402
from engine_run import ORLOP, PODMAN_ULIMITS, Dockerd, Orlopd, Podman, reason, sh, versions  # noqa: E402

RESULTS = os.path.join(HERE, "results", "build.json")
BASELINE = "docker (classic) → dockerd"
DOCKERFILE = """\
FROM busybox
COPY app.txt /app/app.txt
RUN wc -c /app/app.txt > /app/size
RUN mkdir -p /srv/data && echo one > /srv/data/one
RUN sha256sum /app/app.txt > /app/sum
RUN echo three > /srv/data/three && rm /srv/data/one
RUN adduser -D -H -u 1001 runner 2>/dev/null || echo 'runner:x:1001:1001::/tmp:/bin/sh' >> /etc/passwd
CMD ["cat", "/app/size", "/app/sum"]
"""


class Builder:
    """One row: an engine's build command for its own copy of the context."""

    def __init__(self, name: str, backend, argv: list[str], env: dict | None = None) -> None:
        self.name, self.backend, self.argv, self.env = name, backend, argv, env
        self.unavailable = backend.unavailable
        self.context = ""

    def command(self) -> list[str]:
        return [*self.argv, self.context]


def make_context(path: str, owner: str) -> str:
    """The context of one builder: its own file content, so that two builders of the same
    daemon do not share cache entries past FROM and the cold build is cold for each."""
    os.makedirs(path)
    with open(os.path.join(path, "Dockerfile"), "w") as f:
        f.write(DOCKERFILE)
    with open(os.path.join(path, "app.txt"), "w") as f:
        f.write(f"version 0 for {owner}\n" + "x" * 100_000 + "\n")
    return path


def docker_env(buildkit: bool) -> list[str]:
    return ["env", f"DOCKER_BUILDKIT={1 if buildkit else 0}"]


def builders(orlopd: Orlopd, dockerd: Dockerd, podman: Podman) -> list[Builder]:
    tag = ["-t", "bench-build:latest"]
    found = [Builder("orlop → orlopd", orlopd, [ORLOP, "-H", orlopd.daemon.host, "build", "-q", *tag]),
             Builder("docker (classic) → orlopd", orlopd, [*docker_env(False), *orlopd.cli, "build", "-q", *tag]),
             Builder(BASELINE, dockerd, [*docker_env(False), *dockerd.cli, "build", "-q", *tag]),
             Builder("docker (BuildKit) → dockerd", dockerd, [*docker_env(True), *dockerd.cli, "build", "-q", *tag]),
             Builder("podman", podman, [*podman.cli, "build", "-q", "--layers", *PODMAN_ULIMITS, *tag])]
    if not os.path.exists(ORLOP):
        found[0].unavailable = f"{ORLOP} does not exist"
    return found


def hyperfine(builds: list[Builder], runs: int, warmup: int, work: str, prepare: bool) -> tuple[dict, dict]:
    """The builders' commands timed one after the other; with `prepare`, the copied file
    changes before each run. A builder that fails is retried alone and reported."""
    results = os.path.join(work, "hyperfine.json")

    def timed(batch: list[Builder]):
        argv = ["hyperfine", "-N", "--style", "basic", "--warmup", str(warmup), "--runs", str(runs),
                "--export-json", results]
        for b in batch:
            argv.append(f"--command-name={b.name}")
            if prepare:
                target = os.path.join(b.context, "app.txt")
                argv += ["--prepare", f"sh -c {shlex.quote(f'date +%s%N > {target}')}"]
        argv += [shlex.join(b.command()) for b in batch]
        return sh(argv, timeout=300 + (runs + warmup) * len(batch) * 60, check=False)

    timings, failures = {}, {}
    batches = [builds] if timed(builds).returncode == 0 else [[b] for b in builds]
    for batch in batches:
        if len(batches) > 1 and (done := timed(batch)).returncode != 0:
            failures[batch[0].name] = reason(done)
            continue
        with open(results) as f:
            for r in json.load(f)["results"]:
                timings[r["command"]] = {k: r[k] for k in ("median", "mean", "stddev", "min", "max")}
    base = timings.get(BASELINE, {}).get("median")
    for r in timings.values():
        r["vs_docker"] = r["median"] / base if base else None
    return timings, failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    if os.geteuid() != 0:
        parser.error("needs root")
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    report: dict = {"config": vars(args), "versions": versions(), "dockerfile": DOCKERFILE}
    work = tempfile.mkdtemp(prefix="orlop-bench-build-")
    backends = [Orlopd(), Dockerd(), Podman()]
    try:
        archive = busybox_archive(work)
        for backend in backends:
            print(f"starting {backend.name} ...", flush=True)
            backend.start(work, archive)
            if backend.unavailable:
                print(f"  {backend.name} unavailable: {backend.unavailable}")
        report["cold"], report["unavailable"] = {}, {}
        ready = []
        for i, b in enumerate(builders(*backends)):
            if b.unavailable:
                report["unavailable"][b.name] = b.unavailable
                continue
            b.context = make_context(os.path.join(work, f"context-{i}"), b.name)
            start = time.perf_counter()
            done = sh(b.command(), timeout=600, check=False)
            if done.returncode != 0:
                report["unavailable"][b.name] = reason(done)
                continue
            report["cold"][b.name] = time.perf_counter() - start
            ready.append(b)
        print(f"timing rebuilds of {len(ready)} builders x {args.runs} runs ...", flush=True)
        report["unchanged"], failed = hyperfine(ready, args.runs, args.warmup, work, prepare=False)
        report["unavailable"].update(failed)
        report["changed"], failed = hyperfine(ready, args.runs, args.warmup, work, prepare=True)
        report["unavailable"].update(failed)
    finally:
        for backend in backends:
            backend.cleanup()
        shutil.rmtree(work, ignore_errors=True)

    print(f"\n{'builder':30} {'cold':>8} {'no change':>11} {'vs docker':>10} {'file changed':>13} {'vs docker':>10}")
    for name in report["cold"]:
        unchanged, changed = report["unchanged"].get(name, {}), report["changed"].get(name, {})

        def cell(r: dict) -> tuple[str, str]:
            if not r:
                return "failed", ""
            return f"{r['median'] * 1000:.0f} ms", f"{r['vs_docker']:.2f}x" if r.get("vs_docker") else ""
        u, uv = cell(unchanged)
        c, cv = cell(changed)
        print(f"{name:30} {report['cold'][name]:7.2f}s {u:>11} {uv:>10} {c:>13} {cv:>10}")
    for name, why in report["unavailable"].items():
        print(f"  - {name}: unavailable: {why}")
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump(report, f, indent=2)
    print(f"\nresults: {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
