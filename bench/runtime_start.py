"""`<runtime> run` of a busybox bundle running `true`: orlop-runtime against runc
and crun, measured side by side in one run (hyperfine, interleaved warm-up),
printing medians and the ratio to runc.

    .venv/bin/python bench/runtime_start.py [--runs N]

A runtime that cannot run the bundle on this machine (crun 1.8 refuses hybrid
cgroups) is reported with its error instead of a time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests"))
from busybox_bundle import make_bundle  # noqa: E402

RUNTIMES = {
    "orlop-runtime": os.path.join(REPO, ".venv", "bin", "orlop-runtime"),
    "runc": shutil.which("runc"),
    "crun": shutil.which("crun"),
}


def command(binary: str, root: str, bundle: str, container_id: str) -> list[str]:
    return [binary, "--root", root, "run", "--bundle", bundle, container_id]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="orlop-bench-")
    # State roots on tmpfs under /run, where every runtime keeps them by default.
    state = tempfile.mkdtemp(prefix="orlop-bench-", dir="/run")
    try:
        bundle = make_bundle(os.path.join(work, "bundle"), ["true"])
        usable, failures = {}, {}
        for name, binary in RUNTIMES.items():
            if not binary:
                failures[name] = "not installed"
                continue
            cmd = command(binary, os.path.join(state, name), bundle, f"bench-{name}")
            trial = subprocess.run(cmd, capture_output=True, text=True)
            if trial.returncode != 0:
                failures[name] = (trial.stderr.strip().splitlines() or ["failed"])[-1][:160]
                continue
            usable[name] = " ".join(cmd)
        results = os.path.join(work, "results.json")
        subprocess.run(["hyperfine", "-N", "--warmup", "5", "--runs", str(args.runs), "--export-json", results,
                        *[f"--command-name={n}" for n in usable], *usable.values()],
                       check=True, stdout=subprocess.DEVNULL)
        with open(results) as f:
            timings = {r["command"]: r for r in json.load(f)["results"]}
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)
    baseline = timings.get("runc", {}).get("median")
    print(f"`run` of a busybox bundle running `true`, {args.runs} runs each")
    print(f"{'runtime':<15}{'median ms':>10}{'mean ms':>10}{'stddev':>9}{'vs runc':>9}")
    for name, r in timings.items():
        ratio = f"{r['median'] / baseline:.2f}" if baseline else "-"
        print(f"{name:<15}{r['median'] * 1e3:>10.1f}{r['mean'] * 1e3:>10.1f}{r['stddev'] * 1e3:>9.1f}{ratio:>9}")
    for name, reason in failures.items():
        print(f"{name:<15}unavailable: {reason}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
