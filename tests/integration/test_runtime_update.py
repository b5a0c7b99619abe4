"""`orlop-runtime update` against runc's: the same bundle run by each, the same update
given to each (flags, then a resources file on stdin), and the container's cgroup files
compared; the kept config sees the update, and refusals leave the cgroup as it was."""

from __future__ import annotations

import json
import os

import pytest
from busybox_bundle import default_config
from conftest import needs_root
from test_runtime_cgroups_exec_hooks import cgroup_dir, init_pid, read

pytestmark = needs_root

V1 = os.path.exists("/sys/fs/cgroup/memory/memory.limit_in_bytes")
FILES_V1 = [("memory", "memory.limit_in_bytes"), ("memory", "memory.memsw.limit_in_bytes"),
            ("memory", "memory.soft_limit_in_bytes"), ("cpu", "cpu.shares"), ("cpu", "cpu.cfs_quota_us"),
            ("cpu", "cpu.cfs_period_us"), ("pids", "pids.max"), ("cpuset", "cpuset.cpus")]
FILES_V2 = [("memory", "memory.max"), ("memory", "memory.swap.max"), ("memory", "memory.low"),
            ("memory", "cpu.weight"), ("memory", "cpu.max"), ("memory", "pids.max"), ("memory", "cpuset.cpus")]
FLAG_UPDATES = [
    ["--memory", "64m", "--memory-swap", "128m", "--memory-reservation", "16m"],
    ["--cpu-share", "256", "--cpu-quota", "50000", "--cpu-period", "100000"],
    ["--pids-limit", "10", "--cpuset-cpus", "0"],
    ["--memory", "24m"],  # below the current limit, memsw kept: the limit goes first
    ["--cpu-quota", "-1", "--pids-limit", "-1"],
]
FILE_UPDATES = [
    {"memory": {"limit": 48 << 20, "swap": 96 << 20}, "cpu": {"shares": 700, "quota": 25000, "period": 50000}},
    {"pids": {"limit": 7}, "memory": {"reservation": 8 << 20}},
]


def cgroup_files(runtime, cid: str) -> dict[str, str]:
    pid = init_pid(runtime, cid)
    found = {}
    for controller, name in FILES_V1 if V1 else FILES_V2:
        path = os.path.join(cgroup_dir(pid, controller), name)
        found[name] = read(path) if os.path.exists(path) else "-"
    return found


def start(runtime, bundle_factory, cid: str) -> None:
    config = default_config()
    config["linux"]["cgroupsPath"] = f"/orlop-test/{cid}"
    config["linux"]["resources"] = {"memory": {"limit": 32 << 20, "swap": 64 << 20}, "cpu": {"shares": 512},
                                    "pids": {"limit": 30}}
    runtime("run", "-d", "--bundle", bundle_factory(["sleep", "60"], config), cid)


def test_updates_write_what_runc_writes(runtime, runc, bundle_factory, container_id, tmp_path):
    start(runtime, bundle_factory, container_id)
    start(runc, bundle_factory, container_id + "r")
    assert cgroup_files(runtime, container_id) == cgroup_files(runc, container_id + "r")
    for flags in FLAG_UPDATES:
        runtime("update", *flags, container_id)
        runc("update", *flags, container_id + "r")
        ours, runcs = cgroup_files(runtime, container_id), cgroup_files(runc, container_id + "r")
        assert ours == runcs, f"after update {' '.join(flags)}"
    for resources in FILE_UPDATES:
        runtime("update", "-r", "-", container_id, input=json.dumps(resources).encode())
        runc("update", "-r", "-", container_id + "r", input=json.dumps(resources).encode())
        assert cgroup_files(runtime, container_id) == cgroup_files(runc, container_id + "r"), resources
    if V1:
        assert cgroup_files(runtime, container_id)["pids.max"] == "7"
        assert cgroup_files(runtime, container_id)["memory.limit_in_bytes"] == str(48 << 20)


def test_the_update_is_kept_for_the_next_one(runtime, bundle_factory, container_id):
    start(runtime, bundle_factory, container_id)
    runtime("update", "--memory", "64m", "--memory-swap", "128m", container_id)
    state_dir = os.path.join(runtime.root, container_id)
    kept = json.load(open(os.path.join(state_dir, "config.json")))["linux"]["resources"]
    assert kept["memory"] == {"limit": 64 << 20, "swap": 128 << 20}
    assert kept["pids"] == {"limit": 30} and kept["cpu"] == {"shares": 512}
    # The next update only gives the limit: the kept memory+swap (128m) allows 100m.
    runtime("update", "--memory", "100m", container_id)
    assert json.load(open(os.path.join(state_dir, "config.json")))["linux"]["resources"]["memory"] == {
        "limit": 100 << 20, "swap": 128 << 20}
    assert json.loads(runtime("state", container_id).stdout)["status"] == "running"


def test_refused_updates_change_nothing(runtime, bundle_factory, container_id):
    start(runtime, bundle_factory, container_id)
    before = cgroup_files(runtime, container_id)
    done = runtime("update", "--memory", "200m", container_id, check=False)  # above the kept memory+swap
    assert done.returncode == 1 and "memory.swap" in done.stderr and "below memory.limit" in done.stderr
    done = runtime("update", "--memory", "lots", container_id, check=False)
    assert done.returncode == 1 and "invalid value for memory: invalid size: 'lots'" in done.stderr
    done = runtime("update", "--l3-cache-schema", "L3:0=f", container_id, check=False)
    assert done.returncode == 1 and "l3 cache schema is not enabled" in done.stderr
    assert cgroup_files(runtime, container_id) == before
    done = runtime("update", "--kernel-memory", "10m", container_id)
    assert "Kernel memory settings are ignored" in done.stderr
    runtime("kill", container_id, "KILL")
    runtime("delete", container_id, check=False)
    done = runtime("update", "--memory", "64m", container_id, check=False)
    assert done.returncode == 1 and "does not exist" in done.stderr


def test_a_paused_container_is_updated_too(runtime, bundle_factory, container_id):
    if not V1:
        pytest.skip("checks the v1 files")
    start(runtime, bundle_factory, container_id)
    runtime("pause", container_id)
    runtime("update", "--pids-limit", "12", container_id)
    assert cgroup_files(runtime, container_id)["pids.max"] == "12"
    runtime("resume", container_id)
