"""`orlop-runtime features`: what this runtime supports, in the runtime-spec
features.md shape that engines read to decide what they may ask for."""

from __future__ import annotations

from orlop.oci.runtime_spec import HOOK_KINDS, MOUNT_FLAGS, NAMESPACE_FLAGS, PROPAGATION_FLAGS

SECCOMP_ACTIONS = ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                   "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"]
SECCOMP_OPERATORS = ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
                     "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"]
SECCOMP_ARCHES = ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM", "SCMP_ARCH_X32", "SCMP_ARCH_X86", "SCMP_ARCH_X86_64"]
SECCOMP_FLAGS = ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_TSYNC"]


def features(version: str, capabilities: list[str] | None = None) -> dict:
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.2.0",
        "hooks": list(HOOK_KINDS),
        "mountOptions": sorted([*MOUNT_FLAGS, *PROPAGATION_FLAGS]),
        "linux": {
            "namespaces": sorted(NAMESPACE_FLAGS),
            "capabilities": capabilities or [],
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False, "rdma": False},
            "seccomp": {"enabled": True, "actions": SECCOMP_ACTIONS, "operators": SECCOMP_OPERATORS,
                        "archs": SECCOMP_ARCHES, "knownFlags": SECCOMP_FLAGS, "supportedFlags": SECCOMP_FLAGS},
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": False}},
        },
        "annotations": {"io.github.orlop.runtime.version": version},
    }
