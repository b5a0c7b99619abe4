"""A podman of the tests' own: private storage and run root, runc (crun refuses this
host's hybrid cgroups), cgroupfs, file events; everything it mounted removed afterwards."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid

# root has a hard nofile limit of 20000 here and no CAP_SYS_RESOURCE: podman's defaults fail
PODMAN_ULIMITS = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768"]


class Podman:
    def __init__(self, base: str) -> None:
        self.root = os.path.join(base, "storage")
        self.runroot = f"/run/orlop-podman-{uuid.uuid4().hex[:8]}"

    def __call__(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        done = subprocess.run(["podman", "--root", self.root, "--runroot", self.runroot, "--storage-driver", "overlay",
                               "--cgroup-manager", "cgroupfs", "--events-backend", "file", "--runtime", "runc", *args],
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if check and done.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} exited {done.returncode}: {done.stderr}")
        return done

    def cleanup(self) -> None:
        self("rm", "-af", "-t", "0", check=False)
        with open("/proc/self/mountinfo") as f:
            points = [line.split()[4] for line in f]
        for point in sorted((p for p in points if p.startswith((self.root, self.runroot))), key=len, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True)
        shutil.rmtree(self.runroot, ignore_errors=True)
