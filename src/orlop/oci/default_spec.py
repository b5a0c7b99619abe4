"""The config.json `orlop-runtime spec` writes: what `runc spec` (runc 1.1,
specconv.Example and ToRootless) writes, key order included, so that bundles,
scripts and habits move between the two unchanged (hostname "runc" too)."""

from __future__ import annotations

import os

_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
_NOSUID_NOEXEC_NODEV = ["nosuid", "noexec", "nodev"]
_MASKED = ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
           "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"]
_READONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


def default_spec(rootless: bool = False) -> dict:
    """A fresh spec (nothing shared between calls); rootless: as `runc spec --rootless`."""
    return {
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": True,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {kind: list(_CAPS) for kind in ("bounding", "effective", "permitted", "ambient")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "runc",
        "mounts": _mounts(rootless),
        "linux": _linux(rootless),
    }


def _mounts(rootless: bool) -> list[dict]:
    # Rootless: gid 5 (tty) is not mapped, and a new sysfs needs a network namespace of
    # one's own, which an unprivileged user cannot set up: bind the host's /sys instead.
    return [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", *([] if rootless else ["gid=5"])]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": [*_NOSUID_NOEXEC_NODEV, "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": list(_NOSUID_NOEXEC_NODEV)},
        {"destination": "/sys", "type": "none", "source": "/sys", "options": ["rbind", *_NOSUID_NOEXEC_NODEV, "ro"]}
        if rootless else
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": [*_NOSUID_NOEXEC_NODEV, "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": [*_NOSUID_NOEXEC_NODEV, "relatime", "ro"]},
    ]


def _linux(rootless: bool) -> dict:
    # Keys in the order runc's Go struct has them. Rootless: root in a user namespace is
    # the caller, the host's network stays (no veth without privilege), no cgroup settings.
    if rootless:
        head = {"uidMappings": [{"containerID": 0, "hostID": os.geteuid(), "size": 1}],
                "gidMappings": [{"containerID": 0, "hostID": os.getegid(), "size": 1}]}
        kinds = ("pid", "ipc", "uts", "mount", "user")
    else:
        head = {"resources": {"devices": [{"allow": False, "access": "rwm"}]}}
        kinds = ("pid", "network", "ipc", "uts", "mount")
    return {**head, "namespaces": [{"type": kind} for kind in kinds],
            "maskedPaths": list(_MASKED), "readonlyPaths": list(_READONLY)}
