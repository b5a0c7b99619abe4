"""Docker's seccomp profile (moby's format) resolved to the OCI
`linux.seccomp` object, as dockerd does before it writes config.json.

moby's rules carry `includes`/`excludes` by capability, architecture and kernel
version; dockerd keeps a rule only when all of its includes and none of its
excludes match the container (moby profiles/seccomp/seccomp_linux.go, setupSeccomp).
"""

from __future__ import annotations

import json
import os
import platform
import sys

# scripts/setup extracts Docker's profile from Debian's package of the Docker sources (it is
# not orlop's to commit) and installs it beside the venv; /etc/orlop/seccomp.json overrides it.
SEARCH_PATH = ("/etc/orlop/seccomp.json", os.path.join(sys.prefix, "share", "orlop", "docker-default.json"),
               "/usr/share/orlop/docker-default.json")


def find_default_profile() -> str | None:
    return next((path for path in SEARCH_PATH if os.path.exists(path)), None)

# The capabilities Docker gives a container by default (moby oci/caps/defaults.go).
DOCKER_DEFAULT_CAPS = ("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
                       "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
                       "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE")
# uname -m -> moby's architecture names (Go's, with GOARCH 386 spelled x86), and their seccomp arch.
_MOBY_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "i686": "x86", "armv7l": "arm", "ppc64le": "ppc64le",
              "s390x": "s390x", "riscv64": "riscv64"}
_SECCOMP_ARCH = {"amd64": "SCMP_ARCH_X86_64", "arm64": "SCMP_ARCH_AARCH64", "x86": "SCMP_ARCH_X86",
                 "arm": "SCMP_ARCH_ARM", "ppc64le": "SCMP_ARCH_PPC64LE", "s390x": "SCMP_ARCH_S390X",
                 "riscv64": "SCMP_ARCH_RISCV64"}


def host_arch() -> str:
    return _MOBY_ARCH.get(platform.machine(), platform.machine())


def kernel_version() -> tuple[int, int]:
    major, minor = platform.release().split("-")[0].split(".")[:2]
    return int(major), int(minor)


def load_profile(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def for_container(moby: dict, caps) -> dict:
    """The profile `moby` resolved for a container with `caps` (its bounding set) on this host."""
    return resolve(moby, caps, host_arch(), kernel_version())


def resolve(moby: dict, caps, arch: str, kernel: tuple[int, int]) -> dict:
    profile = {key: value for key, value in moby.items() if key not in ("archMap", "syscalls")}
    for entry in moby.get("archMap") or []:
        if entry["architecture"] == _SECCOMP_ARCH.get(arch):
            profile["architectures"] = [entry["architecture"], *(entry.get("subArchitectures") or [])]
    profile["syscalls"] = [_oci_rule(rule) for rule in moby["syscalls"] if _applies(rule, caps, arch, kernel)]
    return profile


def _applies(rule: dict, caps, arch: str, kernel: tuple[int, int]) -> bool:
    includes, excludes = rule.get("includes") or {}, rule.get("excludes") or {}
    if arch in (excludes.get("arches") or []) or any(c in caps for c in excludes.get("caps") or []):
        return False
    if excludes.get("minKernel") and kernel >= _version(excludes["minKernel"]):
        return False
    if includes.get("arches") and arch not in includes["arches"]:
        return False
    if not all(c in caps for c in includes.get("caps") or []):
        return False
    return not includes.get("minKernel") or kernel >= _version(includes["minKernel"])


def _version(text: str) -> tuple[int, int]:
    major, minor = text.split(".")[:2]
    return int(major), int(minor)


def _oci_rule(rule: dict) -> dict:
    # moby's own keys (includes, excludes, comment) stay behind; the OCI ones go to config.json.
    return {key: rule[key] for key in ("names", "action", "errnoRet", "args") if rule.get(key) is not None}
