"""Engines side by side, each with its own private state and the same busybox image (a
`docker save` archive from tests/daemon_fixture.busybox_archive, loaded into every one):
the orlop CLI and the docker CLI against orlopd, the docker CLI against dockerd (20.10, in a
network namespace of its own, with the containerd it starts), and podman (runc, in a network
namespace of its own).

    .venv/bin/python bench/engine_run.py [--runs N] [--warmup N] [--containers 50]

1. `run --rm busybox true`, with `--network none` and with the engine's default network
   (hyperfine: medians, and ratios to docker -> dockerd);
2. `exec <running container> true`;
3. `--containers` detached `run -d busybox sleep 1000` (one CLI call after the other): the wall
   time to start them all, then the memory each container costs: the PSS of its own processes
   (orlop-shim; containerd-shim-runc-v2; conmon) plus the growth of the daemons' PSS (orlopd;
   dockerd + containerd; podman has none), per container; then all are removed.

What each engine's default network is (the interfaces a container sees there) is checked and
printed with the figures: orlopd's has had only lo so far, no bridge.

Needs root. Results go to bench/results/engine_run.json. An engine that does not work here (the
orlop CLI while it is being written, dockerd if it cannot start) is reported with the reason.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests"))
from daemon_fixture import DOCKER, Daemon, busybox_archive  # noqa: E402

ORLOP = os.path.join(REPO, ".venv", "bin", "orlop")
RESULTS = os.path.join(HERE, "results", "engine_run.json")
IMAGE = "busybox"
BASELINE = "docker → dockerd"
# root has no CAP_SYS_RESOURCE here and a hard nofile limit of 20000: podman's defaults fail.
PODMAN_ULIMITS = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768"]
DOCKERD_SOCKET = "/run/bench-docker.sock"
DOCKERD_EXEC_ROOT = "/run/bench-docker-exec"
PODMAN_RUNROOT = "/run/bench-podman"
PODMAN_NETNS = "/run/bench-podman.netns"
NO_BRIDGE = ("orlopd has no bridge networking yet: its default network is a fresh network namespace with "
             "only lo, where dockerd and podman create a veth pair on a bridge (docker0 / podman0).")
NOTES = [
    "dockerd runs in a network namespace of its own (unshare -n), podman's commands in another "
    "(nsenter --net, ~1 ms per call), so that neither touches the host's network.",
    "podman uses runc (crun 1.8 refuses this machine's cgroups), as dockerd does; orlopd uses its "
    "default runtime, orlop-runtime.",
    "PSS divides a shared page among the processes mapping it: new orlop-shims take over part of "
    "orlopd's share of the Python interpreter (its PSS can shrink), so only their sum counts.",
]


# -- processes --------------------------------------------------------------------------------

def sh(cmd: list[str], timeout: float = 60, check: bool = True, env: dict | None = None,
       ) -> subprocess.CompletedProcess:
    """`cmd` under `timeout -s KILL` (an attached `docker run` proxies SIGTERM instead of dying).
    timeout(1) leads its own process group: on Ctrl-C the whole group is killed."""
    proc = subprocess.Popen(["timeout", "-s", "KILL", str(int(timeout)), *cmd], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        out, err = proc.communicate()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    done = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
    if check and done.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} exited {done.returncode}"
                           f"{' (timed out)' if done.returncode == -9 else ''}: {err.strip()[-500:]}")
    return done


def shown(argv: list[str], work: str) -> str:
    """A command as the results record it: paths of this machine (the repository, the
    benchmark's scratch directory) left out, so that results from two machines compare."""
    return shlex.join(argv).replace(REPO + "/", "").replace(work, "<work>")


def reason(done: subprocess.CompletedProcess) -> str:
    if done.returncode == -9:
        return "timed out"
    lines = (done.stderr.strip() or done.stdout.strip()).splitlines()
    return f"exit {done.returncode}: {lines[-1][:160] if lines else 'no output'}"


def processes() -> dict[int, tuple[int, bytes]]:
    """{pid: (ppid, cmdline)} of every process."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                with open(f"/proc/{entry}/stat", "rb") as f:
                    ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    found[int(entry)] = (ppid, f.read())
    return found


def pids_matching(*needles: str) -> list[int]:
    return sorted(pid for pid, (_, cmdline) in processes().items()
                  if cmdline and all(n.encode() in cmdline for n in needles))


def pss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
    return total


def unmount_below(*roots: str) -> None:
    roots = tuple(os.path.realpath(r) for r in roots)
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in sorted({p for p in points for r in roots if p == r or p.startswith(r + "/")},
                        key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


# -- engines ----------------------------------------------------------------------------------

class Backend:
    """One engine's private daemon (or none, for podman): its CLI prefix, the processes it
    keeps per container and for itself."""

    name = ""
    shim = ""
    unavailable: str | None = None
    cli: list[str] = []
    run_flags: list[str] = []
    rm_flags: list[str] = []
    env: dict | None = None

    def start(self, work: str, archive: str) -> None: ...
    def cleanup(self) -> None: ...
    def daemon_pids(self) -> list[int]: return []
    def container_pids(self) -> list[int]: return []

    def call(self, *args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
        return sh([*self.cli, *args], timeout=timeout, check=check, env=self.env)

    def remove_all(self) -> None:
        ids = self.call("ps", "-aq", "--no-trunc", check=False).stdout.split()
        if ids:
            self.call("rm", "-f", *ids, timeout=300, check=False)


class Orlopd(Backend):
    name, shim = "orlopd", "orlop-shim"

    def start(self, work: str, archive: str) -> None:
        self.daemon = Daemon(os.path.join(work, "orlopd", "data"))
        os.makedirs(os.path.dirname(self.daemon.data_root))
        self.daemon.start()
        self.cli = [DOCKER, "--config", os.path.join(work, "docker-cli"), "-H", self.daemon.host]
        self.call("load", "-i", archive, timeout=120)

    def cleanup(self) -> None:
        if hasattr(self, "daemon"):
            self.daemon.cleanup()

    def daemon_pids(self) -> list[int]:
        return [self.daemon.proc.pid] if self.daemon.proc else []

    def container_pids(self) -> list[int]:
        """The shims, and the zygote they are forked from (its share counts too)."""
        return sorted({*pids_matching("orlop-shim", self.daemon.exec_root + "/"),
                       *pids_matching("orlop shim zygote", self.daemon.exec_root + "/")})


class Dockerd(Backend):
    name, shim = "dockerd", "containerd-shim-runc-v2"

    def start(self, work: str, archive: str) -> None:
        self.proc = None
        self.data_root = os.path.join(work, "dockerd")
        if not shutil.which("dockerd"):
            self.unavailable = "dockerd is not installed"
            return
        if pids_matching(DOCKERD_EXEC_ROOT) or pids_matching(DOCKERD_SOCKET):
            self.unavailable = f"another dockerd uses {DOCKERD_EXEC_ROOT} (an earlier benchmark still running?)"
            return
        unmount_below(DOCKERD_EXEC_ROOT)  # leftovers of a run killed with -9
        shutil.rmtree(DOCKERD_EXEC_ROOT, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(DOCKERD_SOCKET)
        os.makedirs(self.data_root)
        self.log_path = os.path.join(work, "dockerd.log")
        # Its own network namespace: docker0 and the containers' veths stay in there (and
        # --bridge/--iptables never touch the host's). dockerd starts its own containerd
        # (under the exec root) unless /run/containerd/containerd.sock exists.
        if os.path.exists("/run/containerd/containerd.sock"):
            self.unavailable = ("a system containerd listens on /run/containerd/containerd.sock: dockerd 20.10 "
                                "would use it instead of a private one")
            return
        dockerd = ["dockerd", "--data-root", os.path.join(self.data_root, "data"), "--exec-root", DOCKERD_EXEC_ROOT,
                   "--pidfile", os.path.join(self.data_root, "docker.pid"), "-H", f"unix://{DOCKERD_SOCKET}",
                   "--containerd-namespace", "bench", "--containerd-plugins-namespace", "bench-plugins",
                   "--iptables=false", "--ip6tables=false"]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh",
                                          *dockerd], stdout=log, stderr=log, start_new_session=True)
        self.cli = [DOCKER, "--config", os.path.join(work, "docker-cli"), "-H", f"unix://{DOCKERD_SOCKET}"]
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                self.unavailable = f"dockerd exited {self.proc.returncode}: {self.log_tail()}"
                return
            if os.path.exists(DOCKERD_SOCKET) and self.call("version", check=False).returncode == 0:
                break
            if time.monotonic() > deadline:
                self.unavailable = f"dockerd did not answer within 60 s: {self.log_tail()}"
                return
            time.sleep(0.1)
        self.call("load", "-i", archive, timeout=120)

    def log_tail(self) -> str:
        with open(self.log_path, errors="replace") as f:
            lines = [line for line in f.read().splitlines() if "level=info" not in line]
        return " | ".join(lines[-3:])[-600:] or "(empty log)"

    def containerd_pids(self) -> list[int]:
        return [pid for pid, (ppid, cmdline) in processes().items()
                if ppid == self.proc.pid and cmdline.startswith(b"containerd\0")]

    def daemon_pids(self) -> list[int]:
        return [self.proc.pid, *self.containerd_pids()] if self.proc else []

    def container_pids(self) -> list[int]:
        return pids_matching("containerd-shim", f"{DOCKERD_EXEC_ROOT}/containerd/")

    def cleanup(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.remove_all()
            containerd = self.containerd_pids()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            kill_all(containerd)
        kill_all(pids_matching(DOCKERD_EXEC_ROOT + "/"))  # shims of containers that outlived it
        unmount_below(self.data_root, DOCKERD_EXEC_ROOT)
        shutil.rmtree(DOCKERD_EXEC_ROOT, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(DOCKERD_SOCKET)


class Podman(Backend):
    name, shim = "podman", "conmon"
    run_flags = PODMAN_ULIMITS
    rm_flags = ["-t", "0"]  # kill at once, as docker's `rm -f` does (podman stops first, 10 s)

    def start(self, work: str, archive: str) -> None:
        self.root = os.path.join(work, "podman")
        self.netns = None
        if not shutil.which("podman"):
            self.unavailable = "podman is not installed"
            return
        if pids_matching(PODMAN_RUNROOT + "/"):
            self.unavailable = f"another podman uses {PODMAN_RUNROOT} (an earlier benchmark still running?)"
            return
        unmount_below(PODMAN_RUNROOT, PODMAN_NETNS)
        shutil.rmtree(PODMAN_RUNROOT, ignore_errors=True)
        # A network namespace of its own (netavark makes podman0 and firewall rules in the
        # caller's): a file holds it open between the CLI calls.
        open(PODMAN_NETNS, "w").close()
        self.netns = PODMAN_NETNS
        sh(["unshare", f"--net={self.netns}", "ip", "link", "set", "lo", "up"])
        self.cli = ["nsenter", f"--net={self.netns}", "podman", "--root", os.path.join(self.root, "storage"),
                    "--runroot", PODMAN_RUNROOT, "--tmpdir", os.path.join(PODMAN_RUNROOT, "libpod"),
                    "--network-config-dir", os.path.join(self.root, "networks"),
                    "--volumepath", os.path.join(self.root, "volumes"), "--storage-driver", "overlay",
                    "--cgroup-manager", "cgroupfs", "--events-backend", "file", "--runtime", "runc"]
        self.call("load", "-i", archive, timeout=120)

    def container_pids(self) -> list[int]:
        return pids_matching("conmon", self.root + "/")

    def remove_all(self) -> None:
        self.call("rm", "-af", "-t", "0", timeout=300, check=False)

    def cleanup(self) -> None:
        if self.netns is None:
            return
        self.remove_all()
        kill_all(pids_matching(self.root + "/"))
        unmount_below(self.root, PODMAN_RUNROOT)
        shutil.rmtree(PODMAN_RUNROOT, ignore_errors=True)
        subprocess.run(["umount", self.netns], capture_output=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.netns)


class Engine:
    """A CLI talking to a backend: one row of every table."""

    def __init__(self, name: str, backend: Backend, cli: list[str] | None = None, env: dict | None = None):
        self.name, self.backend = name, backend
        self.cli = cli if cli is not None else backend.cli
        self.env = env if env is not None else backend.env
        self.unavailable = backend.unavailable

    def command(self, *args: str) -> list[str]:
        return [*self.cli, *args]

    def run(self, *args: str) -> list[str]:
        return [*self.cli, "run", *self.backend.run_flags, *args]


def orlop_engine(orlopd: Orlopd) -> Engine:
    """The orlop CLI, if it works: `-H <host>` (as docker's), else DOCKER_HOST alone."""
    env = {**os.environ, "DOCKER_HOST": orlopd.daemon.host}
    engine = Engine("orlop → orlopd", orlopd, [ORLOP], env)
    if not os.path.exists(ORLOP):
        engine.unavailable = f"{ORLOP} does not exist"
        return engine
    failure = ""
    for cli in ([ORLOP, "-H", orlopd.daemon.host], [ORLOP]):
        done = sh([*cli, "run", "--rm", IMAGE, "true"], env=env, check=False)
        if done.returncode == 0:
            engine.cli = cli
            return engine
        failure = failure or reason(done)
    engine.unavailable = f"`orlop run --rm busybox true` fails: {failure}"
    return engine


# -- measurements -----------------------------------------------------------------------------

def hyperfine(commands: dict[str, tuple[list[str], dict | None]], runs: int, warmup: int, work: str,
              ) -> tuple[dict, dict]:
    """{name: (argv, env)} timed side by side; a command that fails is retried alone, so that
    one broken engine does not cost the others their figures. The commands share hyperfine's
    environment: only the orlop CLI reads one (DOCKER_HOST), the docker CLIs are given -H."""
    env = next((e for _, e in commands.values() if e is not None), None)
    results = os.path.join(work, "hyperfine.json")
    limit = 120 + (runs + warmup) * len(commands) * 20

    def timed(names: list[str]) -> subprocess.CompletedProcess:
        return sh(["hyperfine", "-N", "--style", "basic", "--warmup", str(warmup), "--runs", str(runs),
                   "--export-json", results, *[f"--command-name={n}" for n in names],
                   *[shlex.join(commands[n][0]) for n in names]], timeout=limit, check=False, env=env)

    timings, failures = {}, {}
    batches = [list(commands)] if timed(list(commands)).returncode == 0 else [[n] for n in commands]
    for names in batches:
        if len(batches) > 1 and (done := timed(names)).returncode != 0:
            failures[names[0]] = reason(done)
            continue
        with open(results) as f:
            for r in json.load(f)["results"]:
                timings[r["command"]] = {k: r[k] for k in ("median", "mean", "stddev", "min", "max")}
    return timings, failures


def latency(engines: list[Engine], scenario: str, argv, runs: int, warmup: int, work: str) -> dict:
    commands, failures = {}, {}
    for engine in engines:
        if engine.unavailable:
            failures[engine.name] = engine.unavailable
            continue
        cmd = argv(engine)
        if cmd is None:
            failures[engine.name] = "no container to exec in"
            continue
        trial = sh(cmd, env=engine.env, check=False)
        if trial.returncode != 0:
            failures[engine.name] = reason(trial)
        else:
            commands[engine.name] = (cmd, engine.env)
    print(f"  timing `{scenario}`: {len(commands)} engines x {runs} runs ...", flush=True)
    timings, failed = hyperfine(commands, runs, warmup, work) if commands else ({}, {})
    failures.update(failed)
    base = timings.get(BASELINE, {}).get("median")
    for r in timings.values():
        r["vs_docker"] = r["median"] / base if base else None
    return {"scenario": scenario, "commands": {n: shown(c, work) for n, (c, _) in commands.items()},
            "timings": timings, "unavailable": failures}


def detached(engine: Engine, count: int, network: list[str]) -> dict:
    """`count` sequential `run -d busybox sleep 1000`, their memory, their removal."""
    backend = engine.backend
    daemon_before = pss_kib(backend.daemon_pids())
    ids, start = [], time.monotonic()
    for _ in range(count):
        done = sh(engine.run("-d", *network, IMAGE, "sleep", "1000"), env=engine.env, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"`run -d` number {len(ids) + 1}: {reason(done)}")
        ids.append(done.stdout.strip())
    started = time.monotonic() - start
    # Let the shims settle (orlop-shim forks once while it detaches): the same count twice in a row.
    deadline, seen = time.monotonic() + 15, None
    while time.monotonic() < deadline:
        time.sleep(1)
        pids = backend.container_pids()
        if seen == pids and len(pids) >= count:
            break
        seen = pids
    shim_pss = pss_kib(pids)
    daemon_after = pss_kib(backend.daemon_pids())
    start = time.monotonic()
    done = sh([*engine.command("rm", "-f", *backend.rm_flags), *ids], timeout=300, env=engine.env, check=False)
    removed = time.monotonic() - start if done.returncode == 0 else None
    if done.returncode != 0:
        backend.remove_all()  # with the docker CLI (or podman's own)
    growth = daemon_after - daemon_before
    return {"containers": count, "start_all_s": started, "start_each_ms": started / count * 1e3,
            "remove_all_s": removed, "remove_error": None if removed is not None else reason(done),
            "shim": backend.shim, "shim_processes": len(pids),
            "daemon_processes": len(backend.daemon_pids()),
            "shim_pss_kib": shim_pss, "shim_pss_per_container_kib": shim_pss / count,
            "daemon_pss_before_kib": daemon_before, "daemon_pss_after_kib": daemon_after,
            "daemon_growth_per_container_kib": growth / count,
            "per_container_kib": (shim_pss + growth) / count}


# -- report -----------------------------------------------------------------------------------

def ratio(value: float | None, base: float | None) -> str:
    return f"{value / base:.2f}" if value is not None and base else "-"


def print_latency(result: dict, engines: list[Engine], runs: int) -> None:
    print(f"\n`{result['scenario']}`, {runs} runs each: median ms (mean ± stddev), ratio to {BASELINE}")
    for engine in engines:
        r = result["timings"].get(engine.name)
        if r:
            print(f"  {engine.name:<18}{r['median'] * 1e3:>9.1f}   ({r['mean'] * 1e3:.1f} ± {r['stddev'] * 1e3:.1f})"
                  f"{ratio(r['median'], result['timings'].get(BASELINE, {}).get('median')):>8}")
        else:
            print(f"  {engine.name:<18}unavailable: {result['unavailable'].get(engine.name, '?')}")


def print_detached(results: dict, failures: dict, engines: list[Engine], count: int, network: str) -> None:
    base = results.get(BASELINE, {})
    print(f"\n{count} x `run -d busybox sleep 1000` ({network} network), one CLI call after the other, "
          "then one `rm -f` of them all.\nMemory: PSS in KiB per container, of its own process (orlop-shim, "
          "containerd-shim-runc-v2, conmon) + the daemons' growth (orlopd; dockerd + containerd; none)")
    print(f"  {'engine':<18}{'start all s':>12}{'ms each':>9}{'ratio':>7}{'process':>9}{'daemon':>8}"
          f"{'total':>8}{'ratio':>7}{'rm -f all s':>13}")
    for engine in engines:
        r = results.get(engine.name)
        if not r:
            print(f"  {engine.name:<18}unavailable: {failures.get(engine.name, '?')}")
            continue
        print(f"  {engine.name:<18}{r['start_all_s']:>12.2f}{r['start_each_ms']:>9.0f}"
              f"{ratio(r['start_all_s'], base.get('start_all_s')):>7}{r['shim_pss_per_container_kib']:>9.0f}"
              f"{r['daemon_growth_per_container_kib']:>8.0f}{r['per_container_kib']:>8.0f}"
              f"{ratio(r['per_container_kib'], base.get('per_container_kib')):>7}"
              + (f"{r['remove_all_s']:>13.2f}" if r["remove_all_s"] is not None else "       failed"))
        if r["remove_error"]:
            print(f"  {'':<18}(`rm -f` failed: {r['remove_error']})")
        if r["shim_processes"] != count:
            print(f"  {'':<18}({r['shim_processes']} {r['shim']} processes for {count} containers)")


def print_summary(report: dict, engines: list[Engine]) -> None:
    lat, det = report["latency"], report["detached"]
    cols = [("run, net none", lat["run_none"]), ("run, default net", lat["run_default"]), ("exec", lat["exec"])]
    base_det = det["results"].get(BASELINE, {})
    print(f"\nSummary: medians in ms, KiB of PSS per detached container; xN.NN = ratio to {BASELINE}")
    print(f"  {'engine':<18}" + "".join(f"{name:>18}" for name, _ in cols) + f"{'run -d, each':>18}{'KiB/container':>16}")
    missing = []
    for engine in engines:
        cells = []
        for name, result in cols:
            r = result["timings"].get(engine.name)
            base = result["timings"].get(BASELINE, {}).get("median")
            cells.append(f"{r['median'] * 1e3:.1f} x{ratio(r['median'], base)}" if r else "-")
            if not r and not engine.unavailable:
                missing.append(f"{engine.name}, {name}: {result['unavailable'].get(engine.name, '?')}")
        d = det["results"].get(engine.name)
        cells.append(f"{d['start_each_ms']:.0f} x{ratio(d['start_all_s'], base_det.get('start_all_s'))}" if d else "-")
        cells.append(f"{d['per_container_kib']:.0f} x{ratio(d['per_container_kib'], base_det.get('per_container_kib'))}"
                     if d else "-")
        if not d and not engine.unavailable:
            missing.append(f"{engine.name}, run -d: {det['unavailable'].get(engine.name, '?')}")
        print(f"  {engine.name:<18}" + "".join(f"{c:>18}" for c in cells[:4]) + f"{cells[4]:>16}")
    for engine in engines:
        if engine.unavailable:
            missing.insert(0, f"{engine.name}: unavailable: {engine.unavailable}")
    for line in missing:
        print(f"  - {line}")


def versions() -> dict:
    def first_line(cmd: list[str]) -> str:
        with contextlib.suppress(Exception):
            done = sh(cmd, timeout=20, check=False)
            return (done.stdout.strip() or done.stderr.strip()).splitlines()[0]
        return "unavailable"
    commit = first_line(["git", "-C", REPO, "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--", "src"], capture_output=True,
                           text=True).stdout.strip()
    return {"orlop": commit + (" (src/ modified)" if dirty else ""),
            "docker_cli": first_line([DOCKER, "--version"]), "dockerd": first_line(["dockerd", "--version"]),
            "podman": first_line(["podman", "--version"]), "runc": first_line(["runc", "--version"]),
            "hyperfine": first_line(["hyperfine", "--version"]), "kernel": platform.release(),
            "cpus": os.cpu_count(), "loadavg_at_start": os.getloadavg()}


# -- main -------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--containers", type=int, default=50)
    parser.add_argument("--detached-network", choices=["default", "none"], default="default",
                        help="network of the detached containers (default: the engine's default)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        parser.error("needs root")
    # Cleaned up on Ctrl-C and SIGTERM (even when started with SIGINT ignored, as `cmd &` does).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)

    report = {"config": vars(args), "versions": versions(), "notes": NOTES}
    work = tempfile.mkdtemp(prefix="orlop-bench-engines-")
    backends = [Orlopd(), Dockerd(), Podman()]
    try:
        archive = busybox_archive(work)
        for backend in backends:
            print(f"starting {backend.name} ...", flush=True)
            backend.start(work, archive)
            if backend.unavailable:
                print(f"  {backend.name} unavailable: {backend.unavailable}")
        # What "the default network" is in each: the interfaces a container sees there.
        report["default_network_interfaces"] = interfaces = {}
        for backend in backends:
            if not backend.unavailable:
                done = sh([*backend.cli, "run", *backend.run_flags, "--rm", IMAGE, "ls", "/sys/class/net"],
                          env=backend.env, check=False)
                interfaces[backend.name] = done.stdout.split() if done.returncode == 0 else reason(done)
        if interfaces.get("orlopd") == ["lo"]:
            NOTES.insert(0, NO_BRIDGE)
        NOTES.insert(0, "default network, the interfaces a container sees: "
                     + "; ".join(f"{name}: {' '.join(v) if isinstance(v, list) else v}"
                                 for name, v in interfaces.items()))
        for note in NOTES:
            print(f"note: {note}")
        orlopd, dockerd, podman = backends
        engines = [orlop_engine(orlopd), Engine("docker → orlopd", orlopd), Engine(BASELINE, dockerd),
                   Engine("podman", podman)]
        report["engines"] = {e.name: {"cli": shown(e.cli, work), "unavailable": e.unavailable} for e in engines}
        if engines[0].unavailable:
            print(f"  orlop CLI unavailable: {engines[0].unavailable}")

        report["latency"] = {
            "run_none": latency(engines, "run --rm --network none busybox true",
                                lambda e: e.run("--rm", "--network", "none", IMAGE, "true"),
                                args.runs, args.warmup, work),
            "run_default": latency(engines, "run --rm busybox true (default network)",
                                   lambda e: e.run("--rm", IMAGE, "true"), args.runs, args.warmup, work)}
        targets = {}
        for backend in backends:
            if not backend.unavailable:
                done = sh([*backend.cli, "run", *backend.run_flags, "-d", "--network", "none", IMAGE, "sleep", "1000"],
                          env=backend.env, check=False)
                targets[backend.name] = done.stdout.strip() if done.returncode == 0 else None
        report["latency"]["exec"] = latency(
            engines, "exec <running container> true",
            lambda e: e.command("exec", targets[e.backend.name], "true") if targets.get(e.backend.name) else None,
            args.runs, args.warmup, work)
        for backend in backends:
            if targets.get(backend.name):
                sh([*backend.cli, "rm", "-f", targets[backend.name]], env=backend.env, check=False)
        for key in ("run_none", "run_default", "exec"):
            print_latency(report["latency"][key], engines, args.runs)

        network = ["--network", "none"] if args.detached_network == "none" else []
        results, failures = {}, {}
        for engine in engines:
            if engine.unavailable:
                failures[engine.name] = engine.unavailable
                continue
            print(f"  {args.containers} x run -d with {engine.name} ...", flush=True)
            try:
                results[engine.name] = detached(engine, args.containers, network)
            except RuntimeError as e:
                failures[engine.name] = str(e)
                engine.backend.remove_all()
        report["detached"] = {"network": args.detached_network, "results": results, "unavailable": failures}
        print_detached(results, failures, engines, args.containers, args.detached_network)
        print_summary(report, engines)
        print("\n" + "\n".join(f"note: {n}" for n in NOTES))

        os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
        with open(RESULTS, "w") as f:
            json.dump(report, f, indent=2, ensure_ascii=False)
            f.write("\n")
        print(f"\nwritten to {os.path.relpath(RESULTS, os.getcwd())}")
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not stop the cleanup
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with contextlib.suppress(OSError):  # stdout may be a closed pipe (`| head`)
            print("cleaning up ...", flush=True)
        for backend in reversed(backends):
            try:
                backend.cleanup()
            except Exception as e:  # the others still get cleaned up
                with contextlib.suppress(OSError):
                    print(f"  cleanup of {backend.name} failed: {e}", file=sys.stderr)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:
        print("interrupted (everything it started is removed)", file=sys.stderr)
        raise SystemExit(130) from None
