"""cgroup layout detection, path resolution and what is written for each resource,
on fake cgroupfs trees (no root needed)."""

from __future__ import annotations

import os

import pytest

from orlop.linux.cgroups import open_manager
from orlop.linux.cgroups.common import CgroupError, Hierarchies, expand_slice, read_hierarchies, resolve_path
from orlop.linux.cgroups.v2 import blkio_weight_to_io_weight, shares_to_weight

HYBRID_MOUNTINFO = """\
25 30 0:23 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:24 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
27 25 0:25 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd
28 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,cpu,cpuacct
29 25 0:27 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,memory
30 25 0:28 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,pids
"""
HYBRID_CGROUP = "4:pids:/user.slice\n3:memory:/user.slice/session-1.scope\n2:cpu,cpuacct:/\n1:name=systemd:/x\n0::/x\n"
UNIFIED_MOUNTINFO = "30 1 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw\n"


def write_files(tmp_path, mountinfo: str, cgroup: str) -> tuple[str, str]:
    (tmp_path / "mountinfo").write_text(mountinfo)
    (tmp_path / "cgroup").write_text(cgroup)
    return str(tmp_path / "mountinfo"), str(tmp_path / "cgroup")


def test_detects_hybrid_layout(tmp_path):
    found = read_hierarchies(*write_files(tmp_path, HYBRID_MOUNTINFO, HYBRID_CGROUP))
    assert not found.unified_only
    assert found.v2_mount == "/sys/fs/cgroup/unified"
    assert found.v1["cpu"] == found.v1["cpuacct"] == "/sys/fs/cgroup/cpu,cpuacct"
    assert found.v1["name=systemd"] == "/sys/fs/cgroup/systemd"
    assert found.own["memory"] == "/user.slice/session-1.scope"
    assert found.own[""] == "/x"


def test_detects_unified_layout(tmp_path):
    found = read_hierarchies(*write_files(tmp_path, UNIFIED_MOUNTINFO, "0::/user.slice/a.scope\n"))
    assert found.unified_only and found.v2_mount == "/sys/fs/cgroup"


def test_no_cgroupfs_is_a_clear_error(tmp_path):
    with pytest.raises(CgroupError, match="no cgroup filesystem"):
        read_hierarchies(*write_files(tmp_path, "1 0 8:1 / / rw - ext4 /dev/sda rw\n", "0::/\n"))


@pytest.mark.parametrize(("path", "systemd", "expected"), [
    ("/a/b", False, "/m/a/b"),
    ("rel/c", False, "/m/own/rel/c"),
    ("", False, "/m/own/cid"),
    ("system.slice:docker:abc", False, "/m/system.slice/docker-abc.scope"),
    ("machine-libpod.slice:libpod:abc", True, "/m/machine.slice/machine-libpod.slice/libpod-abc.scope"),
    ("", True, "/m/system.slice/orlop-cid.scope"),
    ("/../../etc", False, "/m/etc"),
])
def test_resolve_path(path, systemd, expected):
    assert resolve_path("/m", "/own", path, "cid", systemd) == expected


def test_expand_slice():
    assert expand_slice("a-b-c.slice") == "/a.slice/a-b.slice/a-b-c.slice"
    assert expand_slice("-.slice") == "/"
    with pytest.raises(CgroupError):
        expand_slice("bad/slice")


def test_conversions_match_runc():
    assert shares_to_weight(2) == 1
    assert shares_to_weight(1024) == 39
    assert shares_to_weight(262144) == 10000
    assert blkio_weight_to_io_weight(10) == 1
    assert blkio_weight_to_io_weight(1000) == 10000


def fake_v1_tree(root, controllers=("memory", "cpu", "cpuset", "pids", "devices", "freezer")) -> Hierarchies:
    for controller in controllers:
        d = root / controller
        d.mkdir(parents=True)
        (d / "cgroup.procs").write_text("")
    (root / "cpuset" / "cpuset.cpus").write_text("0-1\n")
    (root / "cpuset" / "cpuset.mems").write_text("0\n")
    return Hierarchies({c: str(root / c) for c in controllers}, None, {c: "/" for c in controllers})


def kernel_files(directory: str, names: dict[str, str]) -> None:
    os.makedirs(directory, exist_ok=True)
    for name, value in names.items():
        with open(os.path.join(directory, name), "w") as f:
            f.write(value)


def test_v1_apply_writes_each_controller(tmp_path):
    found = fake_v1_tree(tmp_path)
    manager = open_manager("/box", "cid", hierarchies=found)
    # What the kernel creates with the directories:
    kernel_files(manager.paths["cpuset"], {"cpuset.cpus": "", "cpuset.mems": ""})
    kernel_files(manager.paths["memory"], {"memory.limit_in_bytes": "9223372036854771712",
                                           "memory.memsw.limit_in_bytes": "9223372036854771712",
                                           "memory.soft_limit_in_bytes": ""})
    kernel_files(manager.paths["cpu"], {"cpu.shares": "1024", "cpu.cfs_quota_us": "-1", "cpu.cfs_period_us": ""})
    kernel_files(manager.paths["pids"], {"pids.max": "max"})
    kernel_files(manager.paths["devices"], {"devices.allow": "", "devices.deny": ""})
    manager.create()
    assert (tmp_path / "cpuset" / "box" / "cpuset.cpus").read_text() == "0-1", "cpuset inherited from parent"
    manager.apply({
        "memory": {"limit": 1000, "swap": 2000, "reservation": 500},
        "cpu": {"shares": 512, "quota": 20000, "period": 100000, "cpus": "1"},
        "pids": {"limit": 0},
        "devices": [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 1, "minor": 3,
                                                         "access": "rw"}],
    })
    memory = tmp_path / "memory" / "box"
    assert (memory / "memory.limit_in_bytes").read_text() == "1000"
    assert (memory / "memory.memsw.limit_in_bytes").read_text() == "2000"
    assert (memory / "memory.soft_limit_in_bytes").read_text() == "500"
    assert (tmp_path / "cpu" / "box" / "cpu.shares").read_text() == "512"
    assert (tmp_path / "cpu" / "box" / "cpu.cfs_quota_us").read_text() == "20000"
    assert (tmp_path / "cpuset" / "box" / "cpuset.cpus").read_text() == "1"
    assert (tmp_path / "pids" / "box" / "pids.max").read_text() == "max"
    # A fake file keeps only the last write; the order of writes is checked on the real kernel.
    assert (tmp_path / "devices" / "box" / "devices.allow").read_text() == "c 1:3 rw"


def test_v1_swap_without_accounting_is_refused(tmp_path):
    manager = open_manager("/box", "cid", hierarchies=fake_v1_tree(tmp_path))
    manager.create()
    kernel_files(manager.paths["memory"], {"memory.limit_in_bytes": ""})
    with pytest.raises(CgroupError, match="swap accounting"):
        manager.apply({"memory": {"limit": 1000, "swap": 5000}})


def test_v1_unified_resources_need_cgroup2(tmp_path):
    manager = open_manager("/box", "cid", hierarchies=fake_v1_tree(tmp_path))
    manager.create()
    with pytest.raises(CgroupError, match="cgroup v2"):
        manager.apply({"unified": {"memory.high": "100"}})


def test_hybrid_joins_cgroup2_only_when_resources_need_it(tmp_path):
    found = fake_v1_tree(tmp_path)
    found.v2_mount = str(tmp_path / "unified")
    found.own[""] = "/"
    assert "" not in open_manager("/box", "cid", hierarchies=found).paths
    with_unified = open_manager("/box", "cid", hierarchies=found, resources={"unified": {"x": "1"}})
    assert with_unified.paths[""] == str(tmp_path / "unified" / "box")


def test_v2_apply(tmp_path):
    root = tmp_path / "cg"
    kernel_files(str(root), {"cgroup.controllers": "cpu memory pids io", "cgroup.subtree_control": ""})
    found = Hierarchies({}, str(root), {"": "/"})
    manager = open_manager("/pod/box", "cid", hierarchies=found)
    kernel_files(str(root / "pod"), {"cgroup.controllers": "cpu memory pids io", "cgroup.subtree_control": "",
                                     "cgroup.type": "domain"})
    manager.create()
    assert (root / "cgroup.subtree_control").read_text() == "+cpu +io +memory +pids"
    box = root / "pod" / "box"
    kernel_files(str(box), {name: "" for name in ("memory.max", "memory.swap.max", "memory.low", "cpu.weight",
                                                  "cpu.max", "pids.max", "io.weight", "memory.high")})
    manager.apply({"memory": {"limit": 100 << 20, "swap": 150 << 20, "reservation": 10},
                   "cpu": {"shares": 1024, "quota": 50000, "period": 100000},
                   "pids": {"limit": 10}, "blockIO": {"weight": 500},
                   "unified": {"memory.high": "90000000"}})
    assert (box / "memory.max").read_text() == str(100 << 20)
    assert (box / "memory.swap.max").read_text() == str(50 << 20)
    assert (box / "memory.low").read_text() == "10"
    assert (box / "cpu.weight").read_text() == "39"
    assert (box / "cpu.max").read_text() == "50000 100000"
    assert (box / "pids.max").read_text() == "10"
    assert (box / "io.weight").read_text() == str(blkio_weight_to_io_weight(500))
    assert (box / "memory.high").read_text() == "90000000"
