"""Cold pull of a ~150 MB image of three incompressible layers (random bytes, gzip layers as a
registry serves them) from Debian's docker-registry on 127.0.0.1, side by side, run after run:

  orlop library     pull into a fresh content store (a process of its own, as a CLI is), then
                    the unpack into overlay snapshots, timed apart;
  docker → orlopd   `docker pull` through orlopd (download + unpack), store emptied between runs;
  skopeo            `skopeo copy docker://… dir:` (download + verify, no unpack);
  podman            `podman pull --tls-verify=false` into a fresh private --root (download + unpack);
  docker → dockerd  `docker pull` through a private dockerd 20.10, if one starts.

Then layer unpack speed: orlop's unpack of a ~150 MB gzip layer into an overlay snapshot (as a
pull does: decompress, hash, apply, syncfs) against GNU `tar -xzf` of the same layer, and the
same for the plain tar.

    .venv/bin/python bench/image_pull.py [--runs 5] [--layer-mb 50] [--unpack-mb 150]

Needs root. Everything runs in a network namespace of its own (the script re-executes itself
under `unshare -n`): the registry, orlopd, dockerd, podman and skopeo meet on its loopback and
none of them touches the host's network. Results go to bench/results/image_pull.json.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests"))
sys.path.insert(0, HERE)
from daemon_fixture import DOCKER, Daemon  # noqa: E402
from engine_run import kill_all, pids_matching, processes, sh, unmount_below  # noqa: E402
from image_archive import make_docker_archive  # noqa: E402
from registry_fixture import LocalRegistry  # noqa: E402

PYTHON = os.path.join(REPO, ".venv", "bin", "python")
RESULTS = os.path.join(HERE, "results", "image_pull.json")
IMAGE_PATH = "bench/big:1"
DOCKERD_SOCKET = "/run/bench-pull-docker.sock"
DOCKERD_EXEC_ROOT = "/run/bench-pull-docker"
PODMAN_RUNROOT = "/run/bench-pull-podman"
BASELINE = "docker → dockerd"
NOTES = [
    "All in one private network namespace (unshare -n), over its loopback: the registry, orlopd, "
    "dockerd (--bridge=none --iptables=false), podman and skopeo; the host's network is never touched.",
    "MB/s are megabytes (10^6 bytes) of compressed layers fetched per second of wall time, including "
    "each tool's start-up; 'speed' is the baseline's time divided by the tool's (above 1: faster).",
    "skopeo's dir: copy does not unpack; orlop library 'pull' is the download alone, 'pull + unpack' the two "
    "in one process; docker → orlopd, podman and dockerd include the unpack.",
    "orlop's unpack syncs the filesystem (syncfs) before committing the snapshot; tar does not, hence "
    "the `tar -x` + `sync -f` rows.",
]

ORLOP_PULL = r"""
import asyncio, json, sys, time
from orlop.images.content import ContentStore
from orlop.images.pull import pull
from orlop.images.reference import parse
from orlop.images.store import ImageStore
from orlop.images.unpack import unpack_image
from orlop.snapshots import OverlaySnapshotter
root, ref, unpack = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
content, images = ContentStore(root + "/content"), ImageStore(root + "/images")
start = time.monotonic()
record = asyncio.run(pull(parse(ref), content, images))
pulled = time.monotonic()
if unpack:
    unpack_image(record, content, OverlaySnapshotter(root + "/snapshots"))
print(json.dumps({"pull_s": pulled - start, **({"unpack_s": time.monotonic() - pulled} if unpack else {})}))
"""

ORLOP_UNPACK = r"""
import json, sys, time
from orlop.snapshots import OverlaySnapshotter
from orlop.snapshots.unpack import unpack_layer
layer, dest, how = sys.argv[1], sys.argv[2], sys.argv[3]
start = time.monotonic()
with open(layer, "rb") as f:
    if how == "snapshot":
        OverlaySnapshotter(dest).apply_layer(f, None)
    else:
        unpack_layer(f, dest, sync=False)
print(json.dumps({"s": time.monotonic() - start}))
"""


# -- the image and the layer --------------------------------------------------------------------

def random_files(count: int, size: int) -> dict[str, bytes]:
    return {f"data/{i:04d}.bin": os.urandom(size) for i in range(count)}


def build_image(work: str, layer_mb: int) -> str:
    """A docker-archive of three layers of `layer_mb` MB of random files (2 MB each)."""
    per_file = 2_000_000
    count = max(1, layer_mb * 1_000_000 // per_file)
    rootfs = os.path.join(work, "rootfs")
    os.makedirs(os.path.join(rootfs, "data"))
    for name, data in random_files(count, per_file).items():
        with open(os.path.join(rootfs, name), "wb") as f:
            f.write(data)
    layers = [{name.replace("data/", f"data{n}/"): data for name, data in random_files(count, per_file).items()}
              for n in (2, 3)]
    return make_docker_archive(rootfs, os.path.join(work, "big.tar"), "bench/big:1", cmd=["true"],
                               extra_layers=layers)


def build_layer(work: str, mb: int) -> tuple[str, str, int]:
    """A layer of `mb` MB of random files in a few directories: (plain tar, gzip tar, bytes)."""
    plain, compressed = os.path.join(work, "layer.tar"), os.path.join(work, "layer.tar.gz")
    with tarfile.open(plain, "w", format=tarfile.PAX_FORMAT) as tar:
        for i in range(mb * 1_000_000 // 250_000):
            if i % 100 == 0:
                info = tarfile.TarInfo(f"dir{i // 100}")
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            data = os.urandom(250_000)
            info = tarfile.TarInfo(f"dir{i // 100}/file{i:05d}")
            info.size, info.mode, info.mtime = len(data), 0o644, 1_600_000_000
            tar.addfile(info, io.BytesIO(data))
    with open(plain, "rb") as f, gzip.open(compressed, "wb", compresslevel=6) as out:
        shutil.copyfileobj(f, out, 1 << 20)
    return plain, compressed, os.path.getsize(plain)


# -- engines ------------------------------------------------------------------------------------

class Tool:
    """One row: prepare() before each run (a fresh, empty store), pull() timed, cleanup() at the end."""

    name = ""
    unavailable: str | None = None

    def start(self, work: str) -> None: ...
    def prepare(self, run: int) -> None: ...
    def pull(self, ref: str) -> dict: ...
    def cleanup(self) -> None: ...


class OrlopLibrary(Tool):
    def __init__(self, unpack: bool) -> None:
        self.unpack = unpack
        self.name = "orlop library, pull + unpack" if unpack else "orlop library, pull"

    def start(self, work: str) -> None:
        self.work = os.path.join(work, "orlop-lib-unpack" if self.unpack else "orlop-lib")

    def prepare(self, run: int) -> None:
        self.cleanup()
        os.makedirs(self.work)

    def pull(self, ref: str) -> dict:
        start = time.monotonic()
        done = sh([PYTHON, "-c", ORLOP_PULL, self.work, ref, "1" if self.unpack else "0"], timeout=600)
        wall = time.monotonic() - start
        return {"s": wall, **json.loads(done.stdout)}

    def cleanup(self) -> None:
        if hasattr(self, "work"):
            unmount_below(self.work)
            shutil.rmtree(self.work, ignore_errors=True)


class DockerCli(Tool):
    cli: list[str] = []

    def pull(self, ref: str) -> dict:
        start = time.monotonic()
        sh([*self.cli, "pull", ref], timeout=600)
        return {"s": time.monotonic() - start}


class Orlopd(DockerCli):
    name = "docker → orlopd"

    def start(self, work: str) -> None:
        self.daemon = Daemon(os.path.join(work, "orlopd", "data"))
        self.daemon.netns_path = f"/proc/{os.getpid()}/ns/net"    # the bench's namespace, with the registry
        os.makedirs(os.path.dirname(self.daemon.data_root))
        self.daemon.start()
        self.cli = [DOCKER, "--config", os.path.join(work, "docker-cli"), "-H", self.daemon.host]

    def prepare(self, run: int) -> None:
        if run:
            self.ref_cleanup()
        blobs = os.path.join(self.daemon.data_root, "content", "blobs", "sha256")
        if os.path.isdir(blobs) and os.listdir(blobs):
            raise RuntimeError(f"orlopd's content store is not empty before a cold pull: {os.listdir(blobs)}")

    def ref_cleanup(self) -> None:
        ids = sh([*self.cli, "images", "-aq"], check=False).stdout.split()
        if ids:
            sh([*self.cli, "rmi", "-f", *ids], check=False)
        sh([*self.cli, "image", "prune", "-f"], check=False)

    def cleanup(self) -> None:
        if hasattr(self, "daemon"):
            self.daemon.cleanup()


class Dockerd(DockerCli):
    name = BASELINE

    def start(self, work: str) -> None:
        self.proc = None
        self.root = os.path.join(work, "dockerd")
        if not shutil.which("dockerd"):
            self.unavailable = "dockerd is not installed"
            return
        if os.stat("/proc/self/ns/net").st_ino == int(os.environ.get("BENCH_HOST_NETNS", "0")):
            self.unavailable = "refusing to start dockerd in the host's network namespace"
            return
        if os.path.exists("/run/containerd/containerd.sock"):
            self.unavailable = "a system containerd listens on /run/containerd/containerd.sock (dockerd would use it)"
            return
        if pids_matching(DOCKERD_EXEC_ROOT):
            self.unavailable = f"another dockerd uses {DOCKERD_EXEC_ROOT}"
            return
        unmount_below(DOCKERD_EXEC_ROOT)
        shutil.rmtree(DOCKERD_EXEC_ROOT, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(DOCKERD_SOCKET)
        os.makedirs(self.root)
        self.log_path = os.path.join(work, "dockerd.log")
        command = ["dockerd", "--data-root", os.path.join(self.root, "data"), "--exec-root", DOCKERD_EXEC_ROOT,
                   "--pidfile", os.path.join(self.root, "docker.pid"), "-H", f"unix://{DOCKERD_SOCKET}",
                   "--containerd-namespace", "bench-pull", "--containerd-plugins-namespace", "bench-pull-plugins",
                   "--bridge=none", "--iptables=false", "--ip6tables=false"]
        with open(self.log_path, "wb") as log:
            # `unshare -n` once more would cut it off from the registry: it shares the bench's
            # private namespace (checked above not to be the host's).
            self.proc = subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True)
        self.cli = [DOCKER, "--config", os.path.join(work, "docker-cli"), "-H", f"unix://{DOCKERD_SOCKET}"]
        deadline = time.monotonic() + 60
        while not (os.path.exists(DOCKERD_SOCKET) and sh([*self.cli, "version"], check=False).returncode == 0):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                with open(self.log_path, errors="replace") as f:
                    tail = " | ".join(line for line in f.read().splitlines()[-3:])
                self.unavailable = f"dockerd did not start: {tail[-400:]}"
                return
            time.sleep(0.1)

    def prepare(self, run: int) -> None:
        ids = sh([*self.cli, "images", "-aq"], check=False).stdout.split()
        if ids:
            sh([*self.cli, "rmi", "-f", *ids], check=False)

    def cleanup(self) -> None:
        if getattr(self, "proc", None) is None:
            return
        containerd = [pid for pid, (ppid, _) in processes().items() if ppid == self.proc.pid]
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        kill_all(containerd)
        unmount_below(self.root, DOCKERD_EXEC_ROOT)
        shutil.rmtree(DOCKERD_EXEC_ROOT, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(DOCKERD_SOCKET)


class Podman(Tool):
    name = "podman"

    def start(self, work: str) -> None:
        self.work = os.path.join(work, "podman")
        if not shutil.which("podman"):
            self.unavailable = "podman is not installed"

    def prepare(self, run: int) -> None:
        self.cleanup()
        os.makedirs(self.work)
        self.cli = ["podman", "--root", os.path.join(self.work, "storage"), "--runroot", PODMAN_RUNROOT,
                    "--tmpdir", os.path.join(PODMAN_RUNROOT, "libpod"), "--storage-driver", "overlay",
                    "--cgroup-manager", "cgroupfs", "--events-backend", "file"]

    def pull(self, ref: str) -> dict:
        start = time.monotonic()
        sh([*self.cli, "pull", "--quiet", "--tls-verify=false", ref], timeout=600)
        return {"s": time.monotonic() - start}

    def cleanup(self) -> None:
        if hasattr(self, "work"):
            unmount_below(self.work, PODMAN_RUNROOT)
            shutil.rmtree(self.work, ignore_errors=True)
            shutil.rmtree(PODMAN_RUNROOT, ignore_errors=True)


class Skopeo(Tool):
    name = "skopeo copy → dir:"

    def start(self, work: str) -> None:
        self.work = os.path.join(work, "skopeo")
        if not shutil.which("skopeo"):
            self.unavailable = "skopeo is not installed"

    def prepare(self, run: int) -> None:
        shutil.rmtree(self.work, ignore_errors=True)

    def pull(self, ref: str) -> dict:
        start = time.monotonic()
        sh(["skopeo", "copy", "--quiet", "--src-tls-verify=false", f"docker://{ref}", f"dir:{self.work}"],
           timeout=600)
        return {"s": time.monotonic() - start}

    def cleanup(self) -> None:
        if hasattr(self, "work"):
            shutil.rmtree(self.work, ignore_errors=True)


# -- measurements -------------------------------------------------------------------------------

def measure_pulls(tools: list[Tool], ref: str, runs: int, compressed: int) -> dict:
    """Run after run, each tool once per run (interleaved: page cache and CPU clock alike for all)."""
    times: dict[str, list[dict]] = {t.name: [] for t in tools}
    failures: dict[str, str] = {t.name: t.unavailable for t in tools if t.unavailable}
    for run in range(runs):
        for tool in tools:
            if tool.name in failures:
                continue
            try:
                tool.prepare(run)
                sh(["sync"])            # the previous run's writeback is not charged to this one
                times[tool.name].append(tool.pull(ref))
                print(f"  run {run + 1}/{runs}  {tool.name:<32}{times[tool.name][-1]['s']:>8.2f} s", flush=True)
            except (RuntimeError, subprocess.SubprocessError, OSError, ValueError) as e:
                failures[tool.name] = str(e)[-400:]
                print(f"  {tool.name}: failed: {failures[tool.name]}", flush=True)
    results = {}
    for name, samples in times.items():
        if samples and name not in failures:
            median = statistics.median(s["s"] for s in samples)
            row = {"median_s": median, "times_s": [s["s"] for s in samples], "mb_s": compressed / 1e6 / median}
            for phase in ("pull_s", "unpack_s"):
                if phase in samples[0]:
                    row[f"median_{phase}"] = statistics.median(s[phase] for s in samples)
            results[name] = row
    base = results.get(BASELINE) or results.get(Skopeo.name)
    for row in results.values():
        row["speed_vs_baseline"] = base["median_s"] / row["median_s"] if base else None
    return {"runs": runs, "baseline": BASELINE if BASELINE in results else Skopeo.name if base else None,
            "results": results, "unavailable": failures}


def measure_unpack(work: str, plain: str, compressed: str, size: int, runs: int) -> dict:
    dest = os.path.join(work, "unpack")

    def fresh() -> None:
        unmount_below(dest)
        shutil.rmtree(dest, ignore_errors=True)
        os.makedirs(dest)

    def orlop(layer: str, how: str) -> float:
        target = dest if how == "snapshot" else os.path.join(dest, "layer")
        return json.loads(sh([PYTHON, "-c", ORLOP_UNPACK, layer, target, how], timeout=600).stdout)["s"]

    def tar(layer: str, flags: str, sync: bool) -> float:
        start = time.monotonic()
        sh(["tar", f"-x{flags}f", layer, "-C", dest], timeout=600)
        if sync:
            sh(["sync", "-f", dest])
        return time.monotonic() - start

    cases = {   # name: (how, the tar row it is compared with)
        "orlop, gzip layer → snapshot (syncfs)": (lambda: orlop(compressed, "snapshot"), "tar -xzf"),
        "orlop, gzip layer → dir (no sync)": (lambda: orlop(compressed, "dir"), "tar -xzf"),
        "tar -xzf": (lambda: tar(compressed, "z", False), "tar -xzf"),
        "tar -xzf + sync -f": (lambda: tar(compressed, "z", True), "tar -xzf"),
        "orlop, plain layer → snapshot (syncfs)": (lambda: orlop(plain, "snapshot"), "tar -xf"),
        "tar -xf": (lambda: tar(plain, "", False), "tar -xf"),
        "tar -xf + sync -f": (lambda: tar(plain, "", True), "tar -xf"),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for run in range(runs):
        for name, (case, _) in cases.items():
            fresh()
            sh(["sync"])
            times[name].append(case())
            print(f"  run {run + 1}/{runs}  {name:<40}{times[name][-1]:>8.2f} s", flush=True)
    fresh()
    results = {name: {"median_s": statistics.median(t), "times_s": t, "mb_s": size / 1e6 / statistics.median(t)}
               for name, t in times.items()}
    for name, row in results.items():
        row["compared_with"] = cases[name][1]
        row["speed_vs_tar"] = results[cases[name][1]]["median_s"] / row["median_s"]
    return {"runs": runs, "layer_bytes": size, "gzip_bytes": os.path.getsize(compressed), "results": results}


# -- report -------------------------------------------------------------------------------------

def print_report(report: dict) -> None:
    image, pulls = report["image"], report["pull"]
    print(f"\nCold pull of {image['reference']}: {len(image['layers'])} layers, {image['compressed_bytes'] / 1e6:.1f} MB "
          f"compressed ({image['uncompressed_bytes'] / 1e6:.1f} MB unpacked), median of {pulls['runs']} runs; "
          f"speed relative to {pulls['baseline']}")
    print(f"  {'tool':<34}{'median s':>9}{'MB/s':>8}{'speed':>7}   phases")
    for name, row in pulls["results"].items():
        phases = ""
        if "median_pull_s" in row:
            phases = f"download {row['median_pull_s']:.2f} s" + (
                f", unpack {row['median_unpack_s']:.2f} s" if "median_unpack_s" in row else "")
        speed = f"{row['speed_vs_baseline']:.2f}" if row["speed_vs_baseline"] else "-"
        print(f"  {name:<34}{row['median_s']:>9.2f}{row['mb_s']:>8.1f}{speed:>7}   {phases}")
    for name, why in pulls["unavailable"].items():
        print(f"  {name:<34}unavailable: {why}")
    unpack = report["unpack"]
    print(f"\nLayer unpack: {unpack['layer_bytes'] / 1e6:.1f} MB tar ({unpack['gzip_bytes'] / 1e6:.1f} MB gzip) of "
          f"250 kB random files, median of {unpack['runs']} runs; speed relative to tar -xzf / tar -xf")
    print(f"  {'':<42}{'median s':>9}{'MB/s':>8}{'speed':>7}")
    for name, row in unpack["results"].items():
        print(f"  {name:<42}{row['median_s']:>9.2f}{row['mb_s']:>8.1f}{row['speed_vs_tar']:>7.2f}")
    for note in report["notes"]:
        print(f"note: {note}")


def versions() -> dict:
    def first_line(cmd: list[str]) -> str:
        with contextlib.suppress(Exception):
            done = sh(cmd, timeout=20, check=False)
            return (done.stdout.strip() or done.stderr.strip()).splitlines()[0]
        return "unavailable"
    commit = first_line(["git", "-C", REPO, "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--", "src"], capture_output=True,
                           text=True).stdout.strip()
    return {"orlop": commit + (" (src/ modified)" if dirty else ""), "docker_cli": first_line([DOCKER, "--version"]),
            "dockerd": first_line(["dockerd", "--version"]), "podman": first_line(["podman", "--version"]),
            "skopeo": first_line(["skopeo", "--version"]), "tar": first_line(["tar", "--version"]),
            "registry": first_line(["docker-registry", "--version"]), "kernel": os.uname().release,
            "cpus": os.cpu_count(), "loadavg_at_start": os.getloadavg()}


# -- main ---------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--layer-mb", type=int, default=50, help="size of each of the image's three layers")
    parser.add_argument("--unpack-mb", type=int, default=150, help="size of the layer unpacked")
    parser.add_argument("--in-netns", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if os.geteuid() != 0:
        parser.error("needs root")
    if not args.in_netns:   # again, in a network namespace of its own
        os.environ["BENCH_HOST_NETNS"] = str(os.stat("/proc/self/ns/net").st_ino)
        os.execvp("unshare", ["unshare", "-n", "--", PYTHON, os.path.abspath(__file__), "--in-netns",
                              *sys.argv[1:]])
    if os.stat("/proc/self/ns/net").st_ino == int(os.environ.get("BENCH_HOST_NETNS", "0")):
        parser.error("still in the host's network namespace after unshare -n")
    sh(["ip", "link", "set", "lo", "up"])
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)

    report = {"config": {k: v for k, v in vars(args).items() if k != "in_netns"}, "versions": versions(),
              "notes": NOTES}
    work = tempfile.mkdtemp(prefix="orlop-bench-pull-", dir="/var/tmp")
    registry = None
    tools: list[Tool] = [OrlopLibrary(unpack=False), OrlopLibrary(unpack=True), Orlopd(), Skopeo(), Podman(),
                         Dockerd()]
    try:
        print(f"building the image ({3 * args.layer_mb} MB of random files) ...", flush=True)
        archive = build_image(work, args.layer_mb)
        os.makedirs(os.path.join(work, "registry"))
        registry = LocalRegistry(os.path.join(work, "registry"))
        digest = registry.push_archive(archive, IMAGE_PATH)
        os.unlink(archive)
        ref = f"{registry.host}/{IMAGE_PATH}"
        manifest = json.loads(sh(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"]).stdout)
        config = json.loads(sh(["skopeo", "inspect", "--config", "--raw", "--tls-verify=false",
                                f"docker://{ref}"]).stdout)
        layers = [layer["size"] for layer in manifest["layers"]]
        report["image"] = {"reference": ref, "digest": digest, "layers": layers,
                           "compressed_bytes": sum(layers) + manifest["config"]["size"],
                           "uncompressed_bytes": 3 * args.layer_mb * 1_000_000,
                           "layer_media_types": sorted({layer["mediaType"] for layer in manifest["layers"]}),
                           "diff_ids": config["rootfs"]["diff_ids"]}
        for tool in tools:
            if not tool.unavailable:
                print(f"starting {tool.name} ...", flush=True)
                try:
                    tool.start(work)
                except (RuntimeError, AssertionError, subprocess.SubprocessError, OSError) as e:
                    tool.unavailable = str(e)[-400:]
                if tool.unavailable:
                    print(f"  unavailable: {tool.unavailable}")
        print(f"pulling {ref} ({report['image']['compressed_bytes'] / 1e6:.1f} MB), {args.runs} runs ...", flush=True)
        report["pull"] = measure_pulls(tools, ref, args.runs, report["image"]["compressed_bytes"])
        for tool in tools:
            tool.cleanup()
        print(f"building a {args.unpack_mb} MB layer ...", flush=True)
        plain, compressed, size = build_layer(work, args.unpack_mb)
        print("unpacking ...", flush=True)
        report["unpack"] = measure_unpack(work, plain, compressed, size, args.runs)
    except KeyboardInterrupt:
        print("interrupted: cleaning up", file=sys.stderr)
        return 130
    finally:
        for tool in tools:
            with contextlib.suppress(Exception):
                tool.cleanup()
        if registry is not None:
            registry.stop()
        unmount_below(work)
        shutil.rmtree(work, ignore_errors=True)
    print_report(report)
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump(report, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"\nwritten to {os.path.relpath(RESULTS, REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
