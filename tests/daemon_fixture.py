"""An orlopd of the tests' own: private data root, exec root and socket, a busybox image
loaded, and everything it made removed afterwards (containers, shims, mounts)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid

from busybox_bundle import make_rootfs
from image_archive import make_docker_archive

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORLOPD = os.path.join(REPO, ".venv", "bin", "orlopd")
DOCKER = "/usr/local/bin/docker"
OS_RELEASE = b'PRETTY_NAME="orlop test busybox"\nID=orlop-busybox\n'


def busybox_archive(directory: str) -> str:
    """busybox:latest as `docker save` writes it: busybox-static, plus a layer with its own
    /etc/os-release (so a test can tell the image's files from the host's)."""
    rootfs = os.path.join(directory, "rootfs")
    make_rootfs(rootfs)
    return make_docker_archive(rootfs, os.path.join(directory, "busybox.tar"), "busybox:latest",
                               extra_layers=[{"etc/os-release": OS_RELEASE}])


class Daemon:
    def __init__(self, data_root: str, runtime: str = "orlop-runtime", config_file: str = "/nonexistent") -> None:
        self.data_root = data_root
        self.config_file = config_file  # daemon.json (none by default)
        self.exec_root = f"/run/orlop-test-{uuid.uuid4().hex[:8]}"  # shim sockets need short paths
        self.socket = os.path.join(self.exec_root, "orlopd.sock")
        self.host = "unix://" + self.socket
        self.runtime = runtime
        # Its own network namespace, kept across restarts: the daemon's bridge, veths and
        # nftables table never touch the host's (tests reach containers through `in_netns`).
        self.netns = "orlop-test-" + self.exec_root.rsplit("-", 1)[1]
        self.netns_path = f"/run/netns/{self.netns}"
        self.log_path = os.path.join(os.path.dirname(data_root), "orlopd.log")
        self.proc: subprocess.Popen | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self, timeout: float = 15) -> None:
        os.makedirs(self.exec_root, exist_ok=True)
        if not os.path.exists(self.netns_path):
            subprocess.run(["ip", "netns", "add", self.netns], check=True)
            subprocess.run(["ip", "-n", self.netns, "link", "set", "lo", "up"], check=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            ["nsenter", f"--net={self.netns_path}", "--", ORLOPD, "--data-root", self.data_root, "--exec-root", self.exec_root, "--host", self.host,
             "--runtime", self.runtime, "--config-file", self.config_file, "--log-level", "debug"],
            stdout=log, stderr=log, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"orlopd exited {self.proc.returncode}:\n{self.log()}")
            if os.path.exists(self.socket) and self.docker("version", check=False).returncode == 0:
                return
            time.sleep(0.05)
        raise AssertionError(f"orlopd did not answer within {timeout}s:\n{self.log()}")

    def kill(self) -> None:
        """kill -9: what a crash leaves (the shims and containers go on)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def cleanup(self) -> None:
        """Remove every container (through the API when it answers), stop the daemon, then
        make sure no shim, container or mount outlives the test."""
        if self.proc is not None:
            ids = self.docker("ps", "-aq", "--no-trunc", check=False).stdout.split()
            if ids:
                self.docker("rm", "-f", *ids, check=False)
        self.stop()
        for pid in self._shim_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for runtime_root in _glob_dirs(os.path.join(self.exec_root, "runtime")):
            binary = shutil.which(os.path.basename(runtime_root)) or os.path.join(REPO, ".venv", "bin",
                                                                                   os.path.basename(runtime_root))
            for cid in os.listdir(runtime_root):
                subprocess.run([binary, "--root", runtime_root, "delete", "--force", cid], capture_output=True)
        for mountpoint in reversed(_mounts_under(self.data_root)):
            subprocess.run(["umount", "-l", mountpoint], capture_output=True)
        shutil.rmtree(self.exec_root, ignore_errors=True)
        if os.path.exists(self.netns_path):
            subprocess.run(["ip", "netns", "del", self.netns], capture_output=True)

    def in_netns(self, *argv: str, **kw) -> subprocess.CompletedProcess:
        """A command in the daemon's network namespace (where its bridge and ports are)."""
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        kw.setdefault("timeout", 30)
        return subprocess.run(["nsenter", f"--net={self.netns_path}", "--", *argv], **kw)

    def _shim_pids(self) -> list[int]:
        pids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                with contextlib.suppress(OSError):
                    with open(f"/proc/{entry}/cmdline", "rb") as f:
                        cmdline = f.read()
                        if self.exec_root.encode() in cmdline and b"orlop-shim" in cmdline:
                            pids.append(int(entry))
        return pids

    def log(self) -> str:
        with contextlib.suppress(OSError), open(self.log_path, errors="replace") as f:
            return f.read()[-4000:]
        return ""

    # -- clients -------------------------------------------------------------------------------
    def docker(self, *args: str, check: bool = True, timeout: float = 60, input: str | None = None,
               ) -> subprocess.CompletedProcess:
        """The real docker CLI against this daemon. (`docker run` proxies SIGTERM to the
        container, so a hung client is killed with SIGKILL by subprocess's timeout.)"""
        env = {**os.environ, "DOCKER_HOST": self.host, "DOCKER_CONFIG": os.path.join(os.path.dirname(self.data_root), "cli")}
        done = subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=timeout, env=env,
                              input=input, stdin=None if input is not None else subprocess.DEVNULL)
        if check and done.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} exited {done.returncode}:\n"
                                 f"stdout: {done.stdout}\nstderr: {done.stderr}\ndaemon log:\n{self.log()}")
        return done

    def client(self):
        import docker
        return docker.DockerClient(base_url=self.host, version="1.45", timeout=60)

    def load_busybox(self, directory: str) -> None:
        self.docker("load", "-i", busybox_archive(directory))


def _glob_dirs(path: str) -> list[str]:
    if not os.path.isdir(path):
        return []
    return [os.path.join(path, name) for name in os.listdir(path) if os.path.isdir(os.path.join(path, name))]


def _mounts_under(root: str) -> list[str]:
    root = os.path.realpath(root)
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return [p for p in points if p == root or p.startswith(root + "/")]


@contextlib.contextmanager
def running_daemon(runtime: str = "orlop-runtime", image: bool = True):
    """A started daemon with busybox loaded; cleaned up however the test ends."""
    base = tempfile.mkdtemp(prefix="orlopd-test-")
    daemon = Daemon(os.path.join(base, "data"), runtime)
    try:
        daemon.start()
        if image:
            daemon.load_busybox(base)
        yield daemon
    finally:
        daemon.cleanup()
        shutil.rmtree(base, ignore_errors=True)
