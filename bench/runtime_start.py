"""`<runtime> run` of a busybox bundle running `true`: orlop-runtime against runc
and crun, measured side by side in one run (hyperfine), printing medians and
the ratio to runc; once with runc's default spec, once with Docker's default
seccomp profile and capabilities, as engines configure containers.

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


def scenarios() -> dict[str, dict | None]:
    """The bundles timed: runc's default spec, and one configured as dockerd configures
    its containers (Docker's 14 capabilities and default seccomp profile)."""
    from busybox_bundle import default_config
    from seccomp_profiles import DOCKER_DEFAULT_CAPS, DOCKER_PROFILE, docker_default_profile

    found: dict[str, dict | None] = {"runc spec": None}
    if os.path.exists(DOCKER_PROFILE):
        config = default_config()
        config["process"]["capabilities"] = {k: list(DOCKER_DEFAULT_CAPS) for k in ("bounding", "effective",
                                                                                     "permitted")}
        config["process"]["noNewPrivileges"] = False
        config["linux"]["seccomp"] = docker_default_profile()
        found["docker default seccomp + caps"] = config
    return found


def time_scenario(work: str, state: str, name: str, config: dict | None, runs: int) -> None:
    bundle = make_bundle(os.path.join(work, f"bundle-{len(os.listdir(work))}"), ["true"], config=config)
    usable, failures = {}, {}
    for runtime, binary in RUNTIMES.items():
        if not binary:
            failures[runtime] = "not installed"
            continue
        cmd = command(binary, os.path.join(state, runtime), bundle, f"bench-{runtime}")
        trial = subprocess.run(cmd, capture_output=True, text=True)
        if trial.returncode != 0:
            failures[runtime] = (trial.stderr.strip().splitlines() or ["failed"])[-1][:120]
            continue
        usable[runtime] = " ".join(cmd)
    results = os.path.join(work, "results.json")
    subprocess.run(["hyperfine", "-N", "--warmup", "5", "--runs", str(runs), "--export-json", results,
                    *[f"--command-name={n}" for n in usable], *usable.values()],
                   check=True, stdout=subprocess.DEVNULL)
    with open(results) as f:
        timings = {r["command"]: r for r in json.load(f)["results"]}
    baseline = timings.get("runc", {}).get("median")
    print(f"\n`run` of a busybox bundle running `true` ({name}), {runs} runs each")
    print(f"{'runtime':<15}{'median ms':>10}{'mean ms':>10}{'stddev':>9}{'vs runc':>9}")
    for runtime, r in timings.items():
        ratio = f"{r['median'] / baseline:.2f}" if baseline else "-"
        print(f"{runtime:<15}{r['median'] * 1e3:>10.1f}{r['mean'] * 1e3:>10.1f}{r['stddev'] * 1e3:>9.1f}{ratio:>9}")
    for runtime, reason in failures.items():
        print(f"{runtime:<15}unavailable: {reason}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="orlop-bench-")
    # State roots on tmpfs under /run, where every runtime keeps them by default.
    state = tempfile.mkdtemp(prefix="orlop-bench-", dir="/run")
    try:
        for name, config in scenarios().items():
            time_scenario(work, state, name, config, args.runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
