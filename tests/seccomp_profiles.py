"""Docker's default seccomp profile in the OCI shape, as dockerd writes it into config.json.

The moby file carries per-capability and per-architecture conditions
(`includes`/`excludes`); an engine resolves them for the container it creates.
This does the same for Docker's default capability set on this machine.
"""

from __future__ import annotations

import json
import os
import platform

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCKER_PROFILE = os.path.join(REPO, ".cache", "seccomp", "docker-default.json")

DOCKER_DEFAULT_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
                       "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
                       "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]
_GOARCH = {"x86_64": "amd64", "aarch64": "arm64"}
_NATIVE = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64"}


def _kernel_at_least(version: str) -> bool:
    have = tuple(int(x) for x in platform.release().split("-")[0].split(".")[:2])
    return have >= tuple(int(x) for x in version.split(".")[:2])


def docker_default_profile(caps: list[str] = DOCKER_DEFAULT_CAPS) -> dict:
    with open(DOCKER_PROFILE) as f:
        moby = json.load(f)
    machine = platform.machine()
    arch = _GOARCH.get(machine, machine)
    architectures = []
    for entry in moby.get("archMap") or []:
        if entry["architecture"] == _NATIVE.get(machine):
            architectures = [entry["architecture"], *entry.get("subArchitectures", [])]
    syscalls = []
    for rule in moby["syscalls"]:
        includes, excludes = rule.get("includes") or {}, rule.get("excludes") or {}
        if includes.get("caps") and not all(c in caps for c in includes["caps"]):
            continue
        if includes.get("arches") and arch not in includes["arches"]:
            continue
        if includes.get("minKernel") and not _kernel_at_least(includes["minKernel"]):
            continue
        if any(c in caps for c in excludes.get("caps") or []) or arch in (excludes.get("arches") or []):
            continue
        oci = {"names": rule["names"], "action": rule["action"]}
        for key in ("args", "errnoRet"):
            if rule.get(key):
                oci[key] = rule[key]
        syscalls.append(oci)
    profile = {"defaultAction": moby["defaultAction"], "architectures": architectures, "syscalls": syscalls}
    if "defaultErrnoRet" in moby:
        profile["defaultErrnoRet"] = moby["defaultErrnoRet"]
    return profile
