"""`orlop-runtime features`: what this runtime implements, in the shape of the
runtime-spec's features.md (1.2), which engines read to decide what they may ask
for. Built from the tables validate() checks against, so the two cannot drift."""

from __future__ import annotations

from .runtime_spec import (
    CAPABILITIES,
    HOOK_KINDS,
    IDMAP_SUPPORTED,
    MOUNT_ATTRS,
    MOUNT_EXTENSIONS,
    MOUNT_FLAGS,
    NAMESPACE_FLAGS,
    PROPAGATION_FLAGS,
    SECCOMP_ACTIONS,
    SECCOMP_ARCHS,
    SECCOMP_KNOWN_FLAGS,
    SECCOMP_OPERATORS,
    SECCOMP_SUPPORTED_FLAGS,
)

# What the runtime does, whatever this host has (the spec's rule for these fields).
CGROUP = {"v1": True, "v2": True, "systemd": False, "systemdUser": False, "rdma": True}
APPARMOR = True   # runtime.process.apply_lsm switches to process.apparmorProfile at execve
SELINUX = False   # the process label is applied, but linux.mountLabel is not: not full support


def features(version: str, capabilities: list[str] | None = None) -> dict:
    """The features document; `version` is orlop's (this package may not import orlop),
    `capabilities` the names known, in kernel order (default: CAPABILITIES)."""
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.2.0",
        "hooks": list(HOOK_KINDS),
        "mountOptions": sorted([*MOUNT_FLAGS, *PROPAGATION_FLAGS, *MOUNT_ATTRS, *MOUNT_EXTENSIONS]),
        "linux": {
            "namespaces": sorted(NAMESPACE_FLAGS),
            "capabilities": list(capabilities) if capabilities else sorted(CAPABILITIES, key=CAPABILITIES.get),
            "cgroup": dict(CGROUP),
            "seccomp": {
                "enabled": True,
                "actions": list(SECCOMP_ACTIONS),
                "operators": list(SECCOMP_OPERATORS),
                "archs": list(SECCOMP_ARCHS),
                "knownFlags": list(SECCOMP_KNOWN_FLAGS),
                "supportedFlags": list(SECCOMP_SUPPORTED_FLAGS),
            },
            "apparmor": {"enabled": APPARMOR},
            "selinux": {"enabled": SELINUX},
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": IDMAP_SUPPORTED}},
        },
        "annotations": {"io.github.orlop.version": version},
    }
