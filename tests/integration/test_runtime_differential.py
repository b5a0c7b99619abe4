"""The same bundles under orlop-runtime and runc: what the process sees must match."""

from __future__ import annotations

import os
import re

import pytest
from busybox_bundle import default_config
from conftest import needs_root
from seccomp_profiles import DOCKER_DEFAULT_CAPS, DOCKER_PROFILE, docker_default_profile

CAP_SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")

pytestmark = needs_root

PROBE = ("id; hostname; ulimit -a; umask; pwd; echo pid=$$; "
         "grep -E '^(Cap|NoNewPrivs|Seccomp:)' /proc/self/status; cat /proc/self/uid_map /proc/self/gid_map; "
         "probe unshare keyctl mount chown; "
         "cat /proc/self/mountinfo; ls -l /dev | awk '{print $1, $3, $4, $5, $6, $NF}'; "
         "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max 2>/dev/null; "
         "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max 2>/dev/null; env | sort")


def normalise(output: str) -> list[str]:
    lines = []
    for line in output.splitlines():
        if " - " in line and len(line.split()) > 6:  # mountinfo: keep target, fs type, options
            fields = line.split()
            sep = fields.index("-")
            options = ",".join(sorted(o for o in fields[5].split(",")))
            super_options = ",".join(sorted(o for o in fields[sep + 3].split(",")
                                            if not o.startswith(("size=", "nr_inodes=", "inode64"))))
            lines.append(f"mount {fields[4]} {fields[sep + 1]} {options} {super_options}")
        else:
            lines.append(re.sub(r"\s+", " ", line.strip()))
    return sorted(lines)


def scenarios():
    plain = default_config()
    limited = default_config()
    limited["linux"]["resources"] = {"memory": {"limit": 48 * 2**20}, "pids": {"limit": 77}}
    user = default_config()
    user["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [10, 20], "umask": 0o077}
    user["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200},
                                  {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}]
    user["hostname"] = "other"
    readonly = default_config()
    readonly["root"] = {"path": "rootfs", "readonly": True}
    readonly["process"]["cwd"] = "/tmp"
    docker_like = default_config()
    caps = list(DOCKER_DEFAULT_CAPS)
    docker_like["process"]["capabilities"] = {k: caps for k in ("bounding", "effective", "permitted")}
    docker_like["process"]["noNewPrivileges"] = False
    docker_like["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [1000]}
    if os.path.exists(DOCKER_PROFILE):
        docker_like["linux"]["seccomp"] = docker_default_profile()
    ambient = default_config()
    ambient["process"]["user"] = {"uid": 1000, "gid": 1000}
    ambient["process"]["capabilities"] = {k: ["CAP_NET_BIND_SERVICE", "CAP_CHOWN"] for k in CAP_SETS}
    userns = default_config()
    userns["linux"]["namespaces"].append({"type": "user"})
    userns["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 0, "size": 65536}]
    userns["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 0, "size": 65536}]
    return {"default": plain, "limits": limited, "user": user, "readonly": readonly, "docker-like": docker_like,
            "ambient": ambient, "userns": userns}


@pytest.mark.parametrize("name", list(scenarios()))
def test_same_view_as_runc(name, runtime, runc, bundle_factory, container_id):
    config = scenarios()[name]
    ours = runtime("run", "--bundle", bundle_factory(["sh", "-c", PROBE], config), container_id, check=False)
    theirs = runc("run", "--bundle", bundle_factory(["sh", "-c", PROBE], scenarios()[name]), container_id,
                  check=False)
    assert ours.returncode == theirs.returncode == 0, (ours.stderr, theirs.stderr)
    assert normalise(ours.stdout) == normalise(theirs.stdout)


@pytest.mark.parametrize("script", ["exit 0", "exit 42", "sh -c 'kill -9 $$'", "sh -c 'kill -TERM $$'"])
def test_same_exit_status_as_runc(script, runtime, runc, bundle_factory, container_id):
    ours = runtime("run", "--bundle", bundle_factory(["sh", "-c", script + "; exit $?"]), container_id, check=False)
    theirs = runc("run", "--bundle", bundle_factory(["sh", "-c", script + "; exit $?"]), container_id, check=False)
    assert ours.returncode == theirs.returncode
