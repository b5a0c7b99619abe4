"""Docker's seccomp profile (moby's format, docker-default.json here) resolved to the OCI
`linux.seccomp` object, as dockerd does before it writes config.json: the tests' view of
orlop.containers.seccomp_profile, which orlopd uses, on the copy scripts/setup puts here.
"""

from __future__ import annotations

import json
import os

from orlop.containers.seccomp_profile import DOCKER_DEFAULT_CAPS, host_arch, kernel_version, resolve

# Placed by scripts/setup (from Debian's package of the Docker sources), never committed.
DOCKER_DEFAULT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "docker-default.json")
MISSING = "needs Docker's seccomp profile in tests/data/seccomp/docker-default.json: run scripts/setup"

__all__ = ["DOCKER_DEFAULT", "DOCKER_DEFAULT_CAPS", "MISSING", "docker_default_profile", "kernel_version",
           "resolve"]


def docker_default_profile(caps=DOCKER_DEFAULT_CAPS, arch: str | None = None,
                           kernel: tuple[int, int] | None = None) -> dict:
    """Docker's default profile for a container with `caps` (its bounding set) on `arch`."""
    with open(DOCKER_DEFAULT) as f:
        return resolve(json.load(f), caps, arch or host_arch(), kernel or kernel_version())
