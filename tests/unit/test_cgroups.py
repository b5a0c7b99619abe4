"""The cgroup layer on fake cgroupfs trees (no root needed): layout detection, where a
cgroupsPath lands, what is written for each resource and in which order, the v1 -> v2
conversions, device rules (v1 writes and the v2 eBPF program), freezer, kill, stats."""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import pytest

from orlop.linux.cgroups import (
    CgroupError,
    CgroupManager,
    InvalidResource,
    NoCgroup,
    common,
    devices,
    load_manager,
    manager,
    open_manager,
    v1,
    v2,
)
from orlop.linux.cgroups.common import Hierarchies, expand_slice, read_hierarchies, resolve_path
from orlop.linux.cgroups.resources import blkio_weight_to_io_weight, shares_to_weight, swap_to_v2

# This development machine's own layout: v1 controllers plus cgroup2 at /unified.
HYBRID_MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
HYBRID_CGROUP = """\
9:name=systemd:/
8:pids:/
7:blkio:/
6:freezer:/
5:devices:/
4:memory:/process_api/28a097cc
3:cpuset:/
2:cpuacct:/
1:cpu:/
0::/
"""
# A systemd distribution's hybrid layout: co-mounted controllers, mount flags among the options.
SYSTEMD_HYBRID_MOUNTINFO = """\
25 30 0:23 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:24 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
27 25 0:25 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd
28 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,cpu,cpuacct
29 25 0:27 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,memory
"""
SYSTEMD_HYBRID_CGROUP = "4:memory:/user.slice/session-1.scope\n2:cpu,cpuacct:/\n1:name=systemd:/x\n0::/x\n"
UNIFIED_MOUNTINFO = "30 1 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw\n"
LEGACY_MOUNTINFO = "32 31 0:29 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"


def layout(tmp_path, mountinfo: str, cgroup: str) -> Hierarchies:
    (tmp_path / "mountinfo").write_text(mountinfo)
    (tmp_path / "cgroup").write_text(cgroup)
    return read_hierarchies(str(tmp_path / "mountinfo"), str(tmp_path / "cgroup"))


def kernel_files(directory, names: dict[str, str]) -> None:
    """Make the files the kernel would show in a cgroup directory."""
    os.makedirs(directory, exist_ok=True)
    for name, value in names.items():
        with open(os.path.join(directory, name), "w") as f:
            f.write(value)


def content(directory, name: str) -> str:
    with open(os.path.join(directory, name)) as f:
        return f.read()


@pytest.fixture
def writes(monkeypatch) -> list[tuple[str, str]]:
    """Every cgroupfs write, in order, as (file name, value); the files are written too."""
    done: list[tuple[str, str]] = []
    real = common.write

    def recording(directory, name, value):
        done.append((name, str(value)))
        real(directory, name, value)

    for module in (v1, v2, manager):
        monkeypatch.setattr(module, "write", recording)
    return done


# --- layout -------------------------------------------------------------------------------

def test_detects_this_hosts_hybrid_layout(tmp_path):
    found = layout(tmp_path, HYBRID_MOUNTINFO, HYBRID_CGROUP)
    assert found.mode == "hybrid" and not found.unified_only
    assert found.v2_mount == "/sys/fs/cgroup/unified"
    assert set(found.v1) == {"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
                             "name=systemd"}
    assert found.v1["name=systemd"] == "/sys/fs/cgroup/systemd"
    assert found.own["memory"] == "/process_api/28a097cc"


def test_mount_flags_are_not_controllers(tmp_path):
    found = layout(tmp_path, SYSTEMD_HYBRID_MOUNTINFO, SYSTEMD_HYBRID_CGROUP)
    assert set(found.v1) == {"name=systemd", "cpu", "cpuacct", "memory"}  # no "xattr", "rw"
    assert found.v1["cpu"] == found.v1["cpuacct"] == "/sys/fs/cgroup/cpu,cpuacct"
    assert found.own[""] == "/x"


@pytest.mark.parametrize(("mountinfo", "cgroup", "mode"), [
    (UNIFIED_MOUNTINFO, "0::/user.slice/a.scope\n", "unified"),
    (LEGACY_MOUNTINFO, "4:memory:/\n", "legacy"),
    # cgroup2 with a controller-less name=systemd hierarchy beside it limits nothing in v1
    (UNIFIED_MOUNTINFO + "40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n",
     "1:name=systemd:/\n0::/\n", "unified"),
])
def test_detects_unified_and_legacy(tmp_path, mountinfo, cgroup, mode):
    assert layout(tmp_path, mountinfo, cgroup).mode == mode


def test_no_cgroupfs_is_a_clear_error(tmp_path):
    with pytest.raises(CgroupError, match="no cgroup filesystem"):
        layout(tmp_path, "1 0 8:1 / / rw - ext4 /dev/sda rw\n", "0::/\n")


def test_escaped_mount_points(tmp_path):
    found = layout(tmp_path, "30 1 0:26 / /mnt/cg\\040two rw shared:4 - cgroup2 cgroup2 rw\n", "0::/\n")
    assert found.v2_mount == "/mnt/cg two"


def test_relative_paths_use_our_place_below_the_mount_root(tmp_path):
    # Inside a container without a cgroup namespace: the mount shows only /docker/abc.
    mountinfo = "30 1 0:26 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"
    found = layout(tmp_path, mountinfo, "0::/docker/abc/sub\n")
    assert open_manager("box", "cid", hierarchies=found).paths == {"": "/sys/fs/cgroup/sub/box"}
    assert open_manager("/box", "cid", hierarchies=found).paths == {"": "/sys/fs/cgroup/box"}
    elsewhere = layout(tmp_path, mountinfo, "0::/other\n")
    with pytest.raises(CgroupError, match="use an absolute path"):
        open_manager("box", "cid", hierarchies=elsewhere)


# --- where a cgroupsPath lands ------------------------------------------------------------------

@pytest.mark.parametrize(("path", "systemd", "expected"), [
    ("/a/b", False, "/m/a/b"),
    ("rel/c", False, "/m/own/rel/c"),
    ("", False, "/m/own/cid"),
    ("/../../etc", False, "/m/etc"),          # cannot climb out of the hierarchy
    ("../../etc", False, "/m/etc"),
    ("system.slice:docker:abc", False, "/m/system.slice/docker-abc.scope"),
    ("machine-libpod.slice:libpod:abc", True, "/m/machine.slice/machine-libpod.slice/libpod-abc.scope"),
    (":crio:abc", True, "/m/system.slice/crio-abc.scope"),
    ("-.slice::abc", True, "/m/abc.scope"),
    ("kubepods.slice:cri:pod1.slice", True, "/m/kubepods.slice/pod1.slice"),
    ("", True, "/m/system.slice/orlop-cid.scope"),
])
def test_resolve_path(path, systemd, expected):
    assert resolve_path("/m", "/own", path, "cid", systemd) == expected


@pytest.mark.parametrize("path", ["/a/b", "a/b:c", "x.slice:a/b:c"])
def test_systemd_paths_must_be_slice_prefix_name(path):
    with pytest.raises(InvalidResource, match="cgroupsPath"):
        resolve_path("/m", "/own", path, "cid", True)


def test_expand_slice():
    assert expand_slice("a-b-c.slice") == "/a.slice/a-b.slice/a-b-c.slice"
    assert expand_slice("-.slice") == "/"
    for bad in ("bad/x.slice", "a--b.slice", "-a.slice", "noslice", ".slice"):
        with pytest.raises(InvalidResource, match="slice name"):
            expand_slice(bad)


def test_open_manager_on_the_hybrid_host(tmp_path):
    found = layout(tmp_path, HYBRID_MOUNTINFO, HYBRID_CGROUP)
    absolute = open_manager("/orlop/c1", "c1", hierarchies=found)
    assert absolute.version == 1
    assert absolute.paths["memory"] == "/sys/fs/cgroup/memory/orlop/c1"
    assert absolute.paths["name=systemd"] == "/sys/fs/cgroup/systemd/orlop/c1"
    assert "" not in absolute.paths  # the cgroup2 tree is joined only when resources need it
    relative = open_manager("", "c1", hierarchies=found)
    assert relative.paths["memory"] == "/sys/fs/cgroup/memory/process_api/28a097cc/c1"
    assert relative.paths["pids"] == "/sys/fs/cgroup/pids/c1"
    scoped = open_manager("", "c1", systemd=True, hierarchies=found)
    assert scoped.paths["cpu"] == "/sys/fs/cgroup/cpu/system.slice/orlop-c1.scope"
    unified = open_manager("/orlop/c1", "c1", hierarchies=found, resources={"unified": {"hugetlb.2MB.max": "0"}})
    assert unified.paths[""] == "/sys/fs/cgroup/unified/orlop/c1"
    hugepages = open_manager("/orlop/c1", "c1", hierarchies=found, resources={"hugepageLimits": [{}]})
    assert "" in hugepages.paths  # hugetlb is a cgroup2-only controller on this host


def test_open_manager_on_a_unified_host(tmp_path):
    found = layout(tmp_path, UNIFIED_MOUNTINFO, "0::/user.slice/a.scope\n")
    m = open_manager("box", "cid", hierarchies=found)
    assert (m.version, m.paths) == (2, {"": "/sys/fs/cgroup/user.slice/a.scope/box"})
    assert m.path == m.unified_dir == "/sys/fs/cgroup/user.slice/a.scope/box"


def test_load_manager_round_trips_paths():
    assert load_manager({"": "/sys/fs/cgroup/x"}).version == 2
    hybrid = load_manager({"memory": "/m/x", "": "/u/x"})
    assert hybrid.version == 1 and hybrid.unified_dir == "/u/x"
    assert isinstance(hybrid, CgroupManager)
    with pytest.raises(CgroupError):
        load_manager({})


# --- v1 -----------------------------------------------------------------------------------------

V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "cpuset", "pids", "devices", "freezer", "blkio")
V1_KERNEL_FILES = {
    "memory": {"memory.limit_in_bytes": "9223372036854771712", "memory.memsw.limit_in_bytes": "9223372036854771712",
               "memory.soft_limit_in_bytes": "9223372036854771712", "memory.swappiness": "60",
               "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
               "memory.usage_in_bytes": "0", "memory.memsw.usage_in_bytes": "0"},
    "cpu": {"cpu.shares": "1024", "cpu.cfs_quota_us": "-1", "cpu.cfs_period_us": "100000",
            "cpu.rt_period_us": "1000000", "cpu.rt_runtime_us": "0", "cpu.idle": "0"},
    "cpuset": {"cpuset.cpus": "", "cpuset.mems": ""},
    "pids": {"pids.max": "max", "pids.current": "0"},
    "devices": {"devices.allow": "", "devices.deny": ""},
    "freezer": {"freezer.state": "THAWED", "freezer.self_freezing": "0"},
    "blkio": {"blkio.bfq.weight": "100", "blkio.throttle.read_bps_device": ""},
}


def fake_v1_host(root, controllers=V1_CONTROLLERS, unified: bool = False) -> Hierarchies:
    for controller in controllers:
        kernel_files(root / controller, {"cgroup.procs": ""})
    if "cpuset" in controllers:
        kernel_files(root / "cpuset", {"cpuset.cpus": "0-1", "cpuset.mems": "0"})
    own = {c: "/" for c in controllers}
    if unified:
        kernel_files(root / "unified", {"cgroup.controllers": "hugetlb", "cgroup.subtree_control": "",
                                        "cgroup.procs": ""})
        own[""] = "/"
    return Hierarchies({c: str(root / c) for c in controllers}, str(root / "unified") if unified else None, own)


def new_v1(tmp_path, path="/box", controllers=V1_CONTROLLERS, **kw):
    """A created v1 cgroup whose directories hold what the kernel would put there."""
    m = open_manager(path, "cid", hierarchies=fake_v1_host(tmp_path, controllers), **kw)
    for controller in controllers:
        kernel_files(m.paths[controller], {"cgroup.procs": "", "tasks": "",
                                           **V1_KERNEL_FILES.get(controller, {})})
    m.create()
    return m


def test_v1_apply_writes_each_controller(tmp_path, writes):
    m = new_v1(tmp_path)
    assert content(m.paths["cpuset"], "cpuset.cpus") == "0-1", "cpuset inherited from the parent"
    writes.clear()
    m.apply({
        "memory": {"limit": 1 << 30, "swap": 2 << 30, "reservation": 1 << 29, "swappiness": 10,
                   "disableOOMKiller": True, "kernel": 1 << 20},
        "cpu": {"shares": 512, "quota": 20000, "period": 50000, "cpus": "1", "mems": "0",
                "realtimePeriod": 1000000, "realtimeRuntime": 0, "idle": 0},
        "pids": {"limit": 42},
        "blockIO": {"weight": 300, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}]},
    })
    assert writes == [
        ("cpuset.cpus", "1"), ("cpuset.mems", "0"),
        ("memory.limit_in_bytes", str(1 << 30)), ("memory.memsw.limit_in_bytes", str(2 << 30)),
        ("memory.soft_limit_in_bytes", str(1 << 29)), ("memory.swappiness", "10"), ("memory.oom_control", "1"),
        ("cpu.shares", "512"), ("cpu.cfs_period_us", "50000"), ("cpu.cfs_quota_us", "20000"),
        ("cpu.rt_period_us", "1000000"), ("cpu.idle", "0"),
        ("pids.max", "42"),
        ("blkio.bfq.weight", "300"), ("blkio.throttle.read_bps_device", "8:0 1048576"),
    ]  # memory.kernel is ignored, as runc does


@pytest.mark.parametrize(("current", "limit", "swap", "first"), [
    ("9223372036854771712", 100, 200, "memory.limit_in_bytes"),   # new cgroup: limit comes down first
    ("100", 1000, 2000, "memory.memsw.limit_in_bytes"),            # raising past the current limit
    ("1000", 100, 200, "memory.limit_in_bytes"),                   # lowering both
    ("1000", 2000, -1, "memory.memsw.limit_in_bytes"),             # unlimited swap goes first
])
def test_v1_memory_and_memsw_order_keeps_limit_below_memsw(tmp_path, writes, current, limit, swap, first):
    m = new_v1(tmp_path, controllers=("memory",))
    kernel_files(m.paths["memory"], {"memory.limit_in_bytes": current})
    m.apply({"memory": {"limit": limit, "swap": swap}})
    assert [name for name, _ in writes] == [first, ({"memory.limit_in_bytes", "memory.memsw.limit_in_bytes"}
                                                    - {first}).pop()]


def test_v1_unlimited_memory_unlimits_swap_too(tmp_path, writes):
    m = new_v1(tmp_path, controllers=("memory",))
    m.apply({"memory": {"limit": -1}})
    assert writes == [("memory.memsw.limit_in_bytes", "-1"), ("memory.limit_in_bytes", "-1")]


def test_v1_swap_without_swap_accounting(tmp_path, writes):
    m = new_v1(tmp_path, controllers=("memory",))
    os.unlink(os.path.join(m.paths["memory"], "memory.memsw.limit_in_bytes"))
    with pytest.raises(InvalidResource, match="swap accounting.*memory.memsw.limit_in_bytes") as raised:
        m.apply({"memory": {"limit": 1000, "swap": 5000}})
    assert raised.value.errno == errno.EOPNOTSUPP and writes == []
    # No more swap than memory, or unlimited: nothing to enforce, so it is let go (as runc does on v2).
    m.apply({"memory": {"limit": 1000, "swap": 1000}})
    m.apply({"memory": {"limit": 1000, "swap": -1}})
    assert writes == [("memory.limit_in_bytes", "1000")] * 2


def test_v1_memory_limit_below_usage_says_so(tmp_path, monkeypatch):
    m = new_v1(tmp_path, controllers=("memory",))
    kernel_files(m.paths["memory"], {"memory.usage_in_bytes": "5000"})

    def busy(directory, name, value):
        raise CgroupError(errno.EBUSY, f"writing {str(value)!r} to {directory}/{name}: Device or resource busy")

    monkeypatch.setattr(v1, "write", busy)
    with pytest.raises(CgroupError, match=r"writing '1000' to .*memory.limit_in_bytes: .*already uses 5000 bytes"):
        m.apply({"memory": {"limit": 1000}})


def test_v1_cpu_period_refused_is_retried_after_the_quota(tmp_path, monkeypatch):
    m = new_v1(tmp_path, controllers=("cpu",))
    order: list[str] = []
    refused = []

    def kernel(directory, name, value):
        order.append(f"{name}={value}")
        if name == "cpu.cfs_period_us" and not refused:
            refused.append(1)
            raise CgroupError(errno.EINVAL, "writing: Invalid argument")

    monkeypatch.setattr(v1, "write", kernel)
    m.apply({"cpu": {"quota": 1000, "period": 10000}})
    assert order == ["cpu.cfs_period_us=10000", "cpu.cfs_quota_us=1000", "cpu.cfs_period_us=10000"]


@pytest.mark.parametrize(("limit", "written"), [(0, "max"), (-1, "max"), (5, "5")])
def test_pids_limit(tmp_path, writes, limit, written):
    new_v1(tmp_path, controllers=("pids",)).apply({"pids": {"limit": limit}})
    assert writes == [("pids.max", written)]


def test_v1_device_rules(tmp_path, writes):
    m = new_v1(tmp_path, controllers=("devices",))
    writes.clear()
    m.apply({"devices": [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"},
        {"allow": True, "type": "c", "major": 136, "minor": None, "access": "rwm"},
        {"allow": False, "type": "a", "major": 7, "minor": 0, "access": "m"},  # "a" + numbers: both types
    ]})
    assert writes == [("devices.deny", "a"), ("devices.allow", "c 1:3 rw"), ("devices.allow", "c 136:* rwm"),
                      ("devices.deny", "b 7:0 m"), ("devices.deny", "c 7:0 m")]


def test_v1_hugepages_go_to_the_cgroup2_tree_of_a_hybrid_host(tmp_path, writes):
    found = fake_v1_host(tmp_path, ("memory",), unified=True)
    m = open_manager("/box", "cid", hierarchies=found, resources={"hugepageLimits": [{}]})
    m.create()
    assert content(tmp_path / "unified", "cgroup.subtree_control") == "+hugetlb"
    kernel_files(m.unified_dir, {"hugetlb.2MB.max": "max", "hugetlb.2MB.rsvd.max": "max"})
    m.apply({"hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 20}]})
    assert writes[-2:] == [("hugetlb.2MB.max", str(4 << 20)), ("hugetlb.2MB.rsvd.max", str(4 << 20))]
    with pytest.raises(InvalidResource, match="page size 64KB is not supported"):
        m.apply({"hugepageLimits": [{"pageSize": "64KB", "limit": 0}]})


def test_v1_unified_resources(tmp_path, writes):
    plain = new_v1(tmp_path / "a", controllers=("memory",))
    with pytest.raises(InvalidResource, match="needs cgroup v2"):
        plain.apply({"unified": {"memory.high": "100"}})
    found = fake_v1_host(tmp_path / "b", ("memory",), unified=True)
    hybrid = open_manager("/box", "cid", hierarchies=found, resources={"unified": {"x.y": "1"}})
    hybrid.create()
    writes.clear()
    kernel_files(hybrid.unified_dir, {"hugetlb.2MB.max": "max", "cgroup.controllers": "hugetlb"})
    hybrid.apply({"unified": {"hugetlb.2MB.max": "0"}})
    assert writes[-1] == ("hugetlb.2MB.max", "0")
    with pytest.raises(InvalidResource, match=r"'memory.high'.*no such file.*controllers: hugetlb"):
        hybrid.apply({"unified": {"memory.high": "100"}})


def test_v1_missing_hierarchy_is_named(tmp_path):
    m = new_v1(tmp_path, controllers=("memory",))
    with pytest.raises(InvalidResource, match="linux.resources.pids.limit: .*no pids cgroup hierarchy"):
        m.apply({"pids": {"limit": 5}})
    m.apply({"memory": {}, "cpu": {}, "pids": {}})  # empty sections need nothing


def test_v1_blkio_weight_without_a_weighing_scheduler(tmp_path):
    m = new_v1(tmp_path, controllers=("blkio",))
    os.unlink(os.path.join(m.paths["blkio"], "blkio.bfq.weight"))
    with pytest.raises(InvalidResource, match="blockIO.weight: .*blkio.weight does not exist"):
        m.apply({"blockIO": {"weight": 500}})


def test_v1_cpuset_is_inherited_through_every_new_level(tmp_path):
    found = fake_v1_host(tmp_path, ("cpuset",))
    m = open_manager("/a/b/c", "cid", hierarchies=found)
    for level in ("a", "a/b", "a/b/c"):  # what the kernel shows in each new cpuset directory
        kernel_files(tmp_path / "cpuset" / level, {"cpuset.cpus": "", "cpuset.mems": ""})
    m.create()
    assert content(tmp_path / "cpuset/a/b/c", "cpuset.cpus") == "0-1"
    assert content(tmp_path / "cpuset/a", "cpuset.mems") == "0"


def test_join_current_thread_uses_tasks_and_skips_the_cgroup2_dir(tmp_path, writes):
    found = fake_v1_host(tmp_path, ("memory", "pids"), unified=True)
    m = open_manager("/box", "cid", hierarchies=found, resources={"unified": {"a.b": "1"}})
    m.create()
    for controller in ("memory", "pids"):
        kernel_files(m.paths[controller], {"tasks": ""})
    kernel_files(m.unified_dir, {"cgroup.procs": ""})
    m.join_current_thread()
    assert [w for w in writes if w[0] == "tasks"] == [("tasks", "0"), ("tasks", "0")]
    m.add_pid_to_unified(1234)
    assert writes[-1] == ("cgroup.procs", "1234")
    assert content(m.unified_dir, "cgroup.procs") == "1234"


# --- validation (nothing is written when a value is wrong) --------------------------------------

@pytest.mark.parametrize(("resources", "message"), [
    ({"memory": {"limit": -5}}, r"memory.limit: -5 is not a limit"),
    ({"memory": {"limit": 100, "swap": 50}}, r"memory.swap: 50 is below memory.limit 100"),
    ({"memory": {"swap": 50}}, r"memory.swap: 50 needs a memory.limit"),
    ({"memory": {"limit": "1g"}}, r"memory.limit: expected an integer, got '1g'"),
    ({"memory": {"swappiness": 101}}, r"swappiness: 101 is out of range 0-100"),
    ({"cpu": {"shares": 1}}, r"cpu.shares: 1 is out of range 2-262144"),
    ({"cpu": {"quota": -2}}, r"cpu.quota: -2 is out of range"),
    ({"cpu": {"cpus": "0-3;rm"}}, r"cpu.cpus"),
    ({"cpu": {"idle": 2}}, r"cpu.idle: 2 must be 0 or 1"),
    ({"pids": {"limit": True}}, r"pids.limit: expected an integer"),
    ({"blockIO": {"weight": 5}}, r"blockIO.weight: 5 is out of range 10-1000"),
    ({"blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": -1}]}}, r"rate: -1"),
    ({"hugepageLimits": [{"pageSize": "2M", "limit": 1}]}, r"pageSize: '2M'"),
    ({"unified": {"../x": "1"}}, r"unified: '../x' is not a cgroup file name"),
    ({"unified": {"memory.high": 5}}, r"expected a string"),
    ({"devices": [{"allow": True, "access": "rwx"}]}, r"devices\[0\].access: 'rwx'"),
    ({"devices": [{"allow": True, "type": "p"}]}, r"devices\[0\].type: 'p'"),
    ({"devices": [{"access": "r"}]}, r"devices\[0\]: expected"),
    ({"devices": [{"allow": True, "type": "c", "major": -3}]}, r"devices\[0\].major: -3"),
])
def test_invalid_resources_are_refused_before_any_write(tmp_path, writes, resources, message):
    m = new_v1(tmp_path)
    writes.clear()
    with pytest.raises(InvalidResource, match=message) as raised:
        m.apply({"pids": {"limit": 5}, **resources})
    assert isinstance(raised.value, ValueError) and isinstance(raised.value, OSError)
    assert raised.value.strerror.startswith("linux.resources.")
    assert writes == []


def test_errors_keep_their_os_error_class():
    assert isinstance(CgroupError(errno.EACCES, "writing 'x' to /a: Permission denied"), PermissionError)
    assert isinstance(CgroupError(errno.ENOENT, "x"), FileNotFoundError)
    assert type(CgroupError(errno.EBUSY, "x")) is CgroupError
    e = InvalidResource("linux.resources.memory.limit: bad", errno.EOPNOTSUPP)
    assert (e.errno, e.strerror) == (errno.EOPNOTSUPP, "linux.resources.memory.limit: bad")


def test_write_errors_name_the_file_and_the_value(tmp_path):
    with pytest.raises(CgroupError) as raised:
        common.write(str(tmp_path), "memory.limit_in_bytes", "abc")
    assert raised.value.strerror == (f"writing 'abc' to {tmp_path}/memory.limit_in_bytes: "
                                     "No such file or directory")


# --- v2 -----------------------------------------------------------------------------------------

def fake_v2_host(root, controllers="cpuset cpu io memory hugetlb pids") -> Hierarchies:
    kernel_files(root, {"cgroup.controllers": controllers, "cgroup.subtree_control": "", "cgroup.procs": ""})
    return Hierarchies({}, str(root), {"": "/"})


V2_KERNEL_FILES = {name: "" for name in (
    "cgroup.procs", "cgroup.freeze", "memory.max", "memory.swap.max", "memory.low", "cpu.weight", "cpu.idle",
    "cpu.max.burst", "pids.max", "io.weight", "io.max", "cpuset.cpus", "cpuset.mems", "hugetlb.2MB.max",
    "memory.high")}


def new_v2(tmp_path, path="/box", controllers="cpuset cpu io memory hugetlb pids", **files):
    root = tmp_path / "cg"
    m = open_manager(path, "cid", hierarchies=fake_v2_host(root, controllers))
    m.create()
    kernel_files(m.path, {"cgroup.controllers": controllers, "cgroup.type": "domain", "cpu.max": "max 100000",
                          **V2_KERNEL_FILES, **files})
    return m


def test_v2_create_delegates_controllers_down_to_the_leaf(tmp_path, writes):
    root = tmp_path / "cg"
    found = fake_v2_host(root, "cpu memory pids io")
    kernel_files(root / "pod", {"cgroup.controllers": "cpu memory pids io", "cgroup.subtree_control": "memory",
                                "cgroup.type": "domain"})
    m = open_manager("/pod/box", "cid", hierarchies=found)
    m.create()
    assert os.path.isdir(root / "pod" / "box")
    assert writes == [("cgroup.subtree_control", "+cpu +memory +pids +io"),
                      ("cgroup.subtree_control", "+cpu +pids +io")]  # memory was on already; not the leaf


def test_v2_create_tries_controllers_one_by_one_when_refused(tmp_path, monkeypatch):
    root = tmp_path / "cg"
    found = fake_v2_host(root, "cpu memory")
    tried: list[str] = []

    def kernel(directory, name, value):
        tried.append(value)
        if "memory" in value:
            raise CgroupError(errno.EBUSY, "writing: Device or resource busy")  # e.g. internal processes

    monkeypatch.setattr(v2, "write", kernel)
    open_manager("/box", "cid", hierarchies=found).create()
    assert tried == ["+cpu +memory", "+cpu", "+memory"]


def test_v2_mount_root_is_found_above_missing_levels(tmp_path):
    root = tmp_path / "cg"
    fake_v2_host(root)
    assert v2.mount_root(str(root / "a" / "b" / "c")) == str(root)
    with pytest.raises(CgroupError, match="not inside a cgroup2"):
        v2.mount_root(str(tmp_path / "elsewhere"))


def test_v2_apply_converts_v1_values(tmp_path, writes):
    m = new_v2(tmp_path)
    writes.clear()
    m.apply({"memory": {"limit": 100 << 20, "swap": 150 << 20, "reservation": 10 << 20, "swappiness": 0,
                        "disableOOMKiller": True, "kernelTCP": 1},
             "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "burst": 1000, "cpus": "0", "mems": "0"},
             "pids": {"limit": 10}, "blockIO": {"weight": 500},
             "hugepageLimits": [{"pageSize": "2MB", "limit": 2 << 20}],
             "unified": {"memory.high": "90000000", "memory.max": "104857600"}})
    assert writes == [
        ("pids.max", "10"),
        ("memory.swap.max", str(50 << 20)), ("memory.max", str(100 << 20)), ("memory.low", str(10 << 20)),
        ("io.weight", str(blkio_weight_to_io_weight(500))),
        ("cpu.weight", "39"), ("cpu.max", "50000 100000"), ("cpu.max.burst", "1000"),
        ("cpuset.cpus", "0"), ("cpuset.mems", "0"),
        ("hugetlb.2MB.max", str(2 << 20)),
        ("memory.high", "90000000"), ("memory.max", "104857600"),  # unified last: raw values win
    ]  # swappiness, disableOOMKiller, kernelTCP: not in v2, ignored as runc does


@pytest.mark.parametrize(("cpu", "written"), [
    ({"quota": -1, "period": 100000}, "max 100000"),
    ({"quota": 20000}, "20000"),
    ({"period": 50000}, "max 50000"),  # only the period: the current quota is kept
])
def test_v2_cpu_max(tmp_path, writes, cpu, written):
    m = new_v2(tmp_path)
    writes.clear()
    m.apply({"cpu": cpu})
    assert writes == [("cpu.max", written)]


def test_v2_cpu_max_period_only_keeps_a_set_quota(tmp_path, writes):
    m = new_v2(tmp_path, **{"cpu.max": "30000 100000"})
    writes.clear()
    m.apply({"cpu": {"period": 200000}})
    assert writes == [("cpu.max", "30000 200000")]


@pytest.mark.parametrize(("memory", "expected"), [
    ({"limit": 1000, "swap": 1000}, [("memory.swap.max", "0"), ("memory.max", "1000")]),
    ({"limit": 1000, "swap": -1}, [("memory.swap.max", "max"), ("memory.max", "1000")]),
    ({"limit": -1}, [("memory.swap.max", "max"), ("memory.max", "max")]),
    ({"limit": 1000}, [("memory.max", "1000")]),
    ({"reservation": -1}, [("memory.low", "max")]),
])
def test_v2_memory(tmp_path, writes, memory, expected):
    m = new_v2(tmp_path)
    writes.clear()
    m.apply({"memory": memory})
    assert writes == expected


def test_swap_conversion():
    assert swap_to_v2(None, 100) is None
    assert swap_to_v2(None, -1) == "max"
    assert swap_to_v2(300, 100) == 200
    assert swap_to_v2(-1, 100) == "max"


def test_v2_swap_without_swap_accounting(tmp_path, writes):
    m = new_v2(tmp_path)
    os.unlink(os.path.join(m.path, "memory.swap.max"))
    writes.clear()
    m.apply({"memory": {"limit": 1000, "swap": 1000}})
    assert writes == [("memory.max", "1000")]
    with pytest.raises(InvalidResource, match="swap accounting"):
        m.apply({"memory": {"limit": 1000, "swap": 3000}})


def test_v2_io(tmp_path, writes):
    m = new_v2(tmp_path)
    writes.clear()
    m.apply({"blockIO": {"weightDevice": [{"major": 8, "minor": 0, "weight": 1000}],
                         "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1000}],
                         "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 0}]}})
    assert writes == [("io.weight", "8:0 10000"), ("io.max", "8:0 rbps=1000"), ("io.max", "8:16 wiops=max")]
    kernel_files(m.path, {"io.bfq.weight": "100"})  # BFQ takes blkio's own scale
    writes.clear()
    m.apply({"blockIO": {"weight": 500}})
    assert writes == [("io.bfq.weight", "500")]


def test_v2_missing_controller_is_explained(tmp_path):
    m = new_v2(tmp_path, controllers="cpu")
    os.unlink(os.path.join(m.path, "pids.max"))
    with pytest.raises(InvalidResource, match=r"pids.limit: cannot write pids.max: the pids controller is not "
                                              r"enabled .*cgroup.subtree_control; available here: cpu"):
        m.apply({"pids": {"limit": 5}})


@pytest.mark.parametrize(("resources", "message"), [
    ({"cpu": {"realtimeRuntime": 1000}}, "realtime CPU limits exist only in cgroup v1"),
    ({"network": {"classID": 1}}, "net_cls and net_prio exist only in cgroup v1"),
])
def test_v2_refuses_v1_only_resources(tmp_path, writes, resources, message):
    m = new_v2(tmp_path)
    writes.clear()
    with pytest.raises(InvalidResource, match=message):
        m.apply(resources)
    assert writes == []


def test_conversions_match_runc():
    assert [shares_to_weight(s) for s in (2, 1024, 262144)] == [1, 39, 10000]
    assert [blkio_weight_to_io_weight(w) for w in (10, 500, 1000)] == [1, 4950, 10000]
    assert v2.shares_to_weight is shares_to_weight  # still importable from v2


def test_v2_devices_attach_the_compiled_program(tmp_path, monkeypatch):
    attached = []
    from orlop.linux.cgroups import bpf

    monkeypatch.setattr(bpf, "replace_device_filter", lambda path, program: attached.append((path, program)))
    m = new_v2(tmp_path)
    rules = [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}]
    m.apply({"devices": rules})
    expected = devices.bpf_program(*devices.effective(devices.parse_rules(rules)))
    assert attached == [(m.path, expected)]


# --- device rules: kernel semantics and the eBPF program -----------------------------------------

DOCKER_DEFAULT_RULES = [
    {"allow": False, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
    {"allow": False, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
    {"allow": True, "type": "c", "major": None, "minor": None, "access": "m"},
    {"allow": True, "type": "b", "major": None, "minor": None, "access": "m"},
    {"allow": True, "type": "c", "major": 136, "minor": None, "access": "rwm"},
]


def test_effective_rules_replay_v1_semantics():
    default_allow, exceptions = devices.effective(devices.parse_rules([
        {"allow": True, "type": "c", "major": 4, "minor": 1, "access": "r"},  # before "deny all": reset
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "r"},
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "w"},  # merges into rw
        {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
        {"allow": False, "type": "c", "major": 1, "minor": 5, "access": "m"},  # removes m
    ]))
    assert not default_allow
    assert exceptions == {(devices.CHAR, 1, 3): devices.READ | devices.WRITE,
                          (devices.CHAR, 1, 5): devices.READ | devices.WRITE}
    allow_all = devices.effective(devices.parse_rules([{"allow": False, "type": "b", "major": 8, "minor": 0,
                                                         "access": "w"}]))
    assert allow_all == (True, {(devices.BLOCK, 8, 0): devices.WRITE})


def run_bpf(program: bytes, kind: int, major: int, minor: int, access: int) -> int:
    """A tiny interpreter for the instructions bpf_program emits."""
    ctx = {0: access << 16 | kind, 4: major, 8: minor}
    regs = [0] * 11
    pc = 0
    while True:
        raw = program[pc * 8:pc * 8 + 8]
        code, dst, src = raw[0], raw[1] & 0xF, raw[1] >> 4
        off = int.from_bytes(raw[2:4], "little", signed=True)
        imm = int.from_bytes(raw[4:8], "little", signed=True)
        pc += 1
        if code == 0x61:
            regs[dst] = ctx[off]
        elif code == 0x54:
            regs[dst] = regs[dst] & imm & 0xFFFFFFFF
        elif code == 0x74:
            regs[dst] = (regs[dst] & 0xFFFFFFFF) >> imm
        elif code == 0xBC:
            regs[dst] = regs[src] & 0xFFFFFFFF
        elif code == 0xB7:
            regs[dst] = imm
        elif code in (0x15, 0x55, 0x45):
            taken = {0x15: regs[dst] == imm, 0x55: regs[dst] != imm, 0x45: bool(regs[dst] & imm)}[code]
            pc += off if taken else 0
        elif code == 0x95:
            return regs[0]
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")


@pytest.mark.parametrize("rules", [
    DOCKER_DEFAULT_RULES,
    [],
    [{"allow": False, "type": "c", "major": 1, "minor": 3, "access": "w"},
     {"allow": False, "type": "b", "major": None, "minor": None, "access": "m"}],
    [{"allow": False, "access": "rwm"}, {"allow": True, "type": "a", "major": 1, "minor": None, "access": "r"}],
    [{"allow": False, "access": "rwm"}, {"allow": True, "access": "rwm"}],
])
def test_bpf_program_decides_like_the_v1_kernel(rules):
    default_allow, exceptions = devices.effective(devices.parse_rules(rules))
    program = devices.bpf_program(default_allow, exceptions)
    for kind in (devices.BLOCK, devices.CHAR):
        for major, minor in ((1, 3), (1, 5), (1, 9), (5, 2), (10, 229), (136, 4), (8, 0), (7, 7)):
            for access in range(1, 8):
                expected = devices.is_allowed(default_allow, exceptions, kind, major, minor, access)
                assert run_bpf(program, kind, major, minor, access) == int(expected), (kind, major, minor, access)


def test_docker_defaults_allow_dev_null_and_deny_dev_kmsg():
    default_allow, exceptions = devices.effective(devices.parse_rules(DOCKER_DEFAULT_RULES))
    program = devices.bpf_program(default_allow, exceptions)
    assert run_bpf(program, devices.CHAR, 1, 3, devices.READ | devices.WRITE) == 1
    assert run_bpf(program, devices.CHAR, 1, 11, devices.READ) == 0          # /dev/kmsg
    assert run_bpf(program, devices.CHAR, 10, 229, devices.READ) == 0        # /dev/fuse, denied again
    assert run_bpf(program, devices.BLOCK, 8, 0, devices.MKNOD) == 1         # mknod of any node
    assert run_bpf(program, devices.BLOCK, 8, 0, devices.READ) == 0


# --- processes, freezer, kill, removal, statistics ----------------------------------------------

def test_pids_are_collected_recursively_once_each(tmp_path):
    m = load_manager({"": str(tmp_path / "box")})
    kernel_files(tmp_path / "box", {"cgroup.procs": "30\n10\n"})
    kernel_files(tmp_path / "box" / "child", {"cgroup.procs": "20\n10\n"})
    kernel_files(tmp_path / "box" / "child" / "leaf", {"cgroup.procs": ""})
    assert m.pids() == [10, 20, 30]
    assert load_manager({"": str(tmp_path / "gone")}).pids() == []


def test_v1_pids_prefer_the_pids_hierarchy(tmp_path):
    kernel_files(tmp_path / "pids", {"cgroup.procs": "7\n"})
    kernel_files(tmp_path / "memory", {"cgroup.procs": "8\n"})
    assert load_manager({"memory": str(tmp_path / "memory"), "pids": str(tmp_path / "pids")}).pids() == [7]


def test_destroy_removes_nested_cgroups_and_tolerates_missing_ones(tmp_path):
    for d in ("m/box/sub/leaf", "p/box"):
        os.makedirs(tmp_path / d)
    m = load_manager({"memory": str(tmp_path / "m/box"), "pids": str(tmp_path / "p/box"),
                      "cpu": str(tmp_path / "c/box")})
    m.destroy()
    assert not os.path.exists(tmp_path / "m/box") and not os.path.exists(tmp_path / "p/box")
    assert os.path.isdir(tmp_path / "m")  # parents stay
    m.destroy()


def test_destroy_retries_while_busy(tmp_path, monkeypatch):
    os.makedirs(tmp_path / "box")
    real_rmdir, calls = os.rmdir, []

    def rmdir(path):
        calls.append(path)
        if len(calls) < 3:
            raise OSError(errno.EBUSY, "Device or resource busy")
        real_rmdir(path)

    monkeypatch.setattr(common.os, "rmdir", rmdir)
    load_manager({"": str(tmp_path / "box")}).destroy()
    assert len(calls) == 3 and not os.path.exists(tmp_path / "box")


def test_v1_freezer(tmp_path, writes):
    m = load_manager({"freezer": str(tmp_path)})
    kernel_files(tmp_path, {"freezer.state": "THAWED", "freezer.self_freezing": "0"})
    assert not m.is_frozen()
    m.freeze()  # a regular file reads back FROZEN at once
    assert writes == [("freezer.state", "FROZEN")]
    kernel_files(tmp_path, {"freezer.self_freezing": "1"})
    assert m.is_frozen()
    kernel_files(tmp_path, {"freezer.self_freezing": "0"})
    assert not m.is_frozen(), "frozen only through an ancestor: not paused itself (runc's view)"
    m.thaw()
    assert content(tmp_path, "freezer.state") == "THAWED"
    with pytest.raises(CgroupError, match="no freezer"):
        load_manager({"memory": str(tmp_path)}).freeze()


def test_v2_freeze_waits_for_cgroup_events(tmp_path, monkeypatch):
    m = load_manager({"": str(tmp_path)})
    kernel_files(tmp_path, {"cgroup.freeze": "0", "cgroup.events": "populated 1\nfrozen 1\n"})
    m.freeze()
    assert m.is_frozen()
    m.thaw()
    assert not m.is_frozen()
    kernel_files(tmp_path, {"cgroup.events": "populated 1\nfrozen 0\n"})
    monkeypatch.setattr(v2, "_FREEZE_TIMEOUT", 0.05)
    with pytest.raises(CgroupError, match="still says frozen 0"):
        m.freeze()
    assert content(tmp_path, "cgroup.freeze") == "0", "not left half frozen"


def test_v2_freeze_needs_cgroup_freeze(tmp_path):
    with pytest.raises(CgroupError, match="needs Linux 5.2"):
        load_manager({"": str(tmp_path)}).freeze()


@pytest.fixture
def signals(monkeypatch) -> list[tuple[list[int], int]]:
    sent: list[tuple[list[int], int]] = []
    monkeypatch.setattr(manager, "signal_all", lambda pids, sig: sent.append((pids, sig)))
    return sent


def test_kill_all_uses_cgroup_kill_for_sigkill(tmp_path, writes, signals):
    kernel_files(tmp_path, {"cgroup.kill": "", "cgroup.freeze": "0", "cgroup.procs": "5\n",
                            "cgroup.events": "frozen 1\n"})
    m = load_manager({"": str(tmp_path)})
    m.kill_all(9)
    assert writes == [("cgroup.kill", "1")] and signals == []
    writes.clear()
    m.kill_all(15)  # other signals: freeze, signal each pid, thaw
    assert writes == [("cgroup.freeze", "1"), ("cgroup.freeze", "0")] and signals == [([5], 15)]


def test_kill_all_leaves_a_paused_container_paused(tmp_path, writes, signals):
    kernel_files(tmp_path, {"freezer.state": "FROZEN", "cgroup.procs": "5\n"})
    m = load_manager({"freezer": str(tmp_path)})
    m.kill_all(15)  # delivered on resume
    assert writes == [("freezer.state", "FROZEN")] and signals == [([5], 15)]
    m.kill_all(9)   # a frozen process cannot die: thawed
    assert writes[-1] == ("freezer.state", "THAWED")


def test_kill_all_without_a_freezer_still_signals(tmp_path, signals):
    kernel_files(tmp_path, {"cgroup.procs": "5\n6\n"})
    load_manager({"memory": str(tmp_path)}).kill_all(15)
    assert signals == [([5, 6], 15)]


def test_v1_stats_and_oom_kills(tmp_path):
    kernel_files(tmp_path / "memory", {
        "memory.usage_in_bytes": "1000", "memory.max_usage_in_bytes": "2000",
        "memory.limit_in_bytes": "9223372036854771712", "memory.memsw.usage_in_bytes": "1500",
        "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n", "memory.stat": "cache 10\nrss 20\n"})
    kernel_files(tmp_path / "cpuacct", {"cpuacct.usage": "123456", "cpuacct.stat": "user 2\nsystem 1\n"})
    kernel_files(tmp_path / "cpu", {"cpu.stat": "nr_periods 4\nnr_throttled 1\nthrottled_time 99\n"})
    kernel_files(tmp_path / "pids", {"pids.current": "3", "pids.max": "max"})
    m = load_manager({c: str(tmp_path / c) for c in ("memory", "cpuacct", "cpu", "pids")})
    stats = m.stats()
    tick_ns = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    assert stats["memory"] == {"usage": 1000, "max_usage": 2000, "limit": None, "swap_usage": 500, "oom_kill": 3,
                               "stats": {"cache": 10, "rss": 20}}
    assert stats["cpu"] == {"usage_ns": 123456, "user_ns": 2 * tick_ns, "system_ns": tick_ns, "periods": 4,
                            "throttled_periods": 1, "throttled_ns": 99}
    assert stats["pids"] == {"current": 3, "limit": None}
    assert m.oom_kill_count() == 3


def test_v2_stats_and_oom_kills(tmp_path):
    kernel_files(tmp_path, {"memory.current": "1000", "memory.peak": "3000", "memory.max": "4096",
                            "memory.swap.current": "7", "memory.events": "low 0\nmax 2\noom 1\noom_kill 1\n",
                            "memory.stat": "anon 5\n", "cpu.stat": "usage_usec 10\nuser_usec 6\nsystem_usec 4\n",
                            "pids.current": "2", "pids.max": "42"})
    m = load_manager({"": str(tmp_path)})
    stats = m.stats()
    assert stats["memory"] == {"usage": 1000, "max_usage": 3000, "limit": 4096, "swap_usage": 7, "oom_kill": 1,
                               "stats": {"anon": 5}}
    assert stats["cpu"]["usage_ns"] == 10_000 and stats["cpu"]["user_ns"] == 6_000
    assert stats["pids"] == {"current": 2, "limit": 42}
    assert m.oom_kill_count() == 1
    assert load_manager({"": str(tmp_path / "none")}).oom_kill_count() == 0


def test_no_cgroup_does_nothing():
    m = NoCgroup()
    m.create()
    m.apply({"pids": {"limit": 5}})
    m.kill_all(15)
    m.destroy()
    assert (m.paths, m.unified_dir, m.pids(), m.is_frozen()) == ({}, None, [], False)


# --- start-up cost ---------------------------------------------------------------------------------

def test_import_pulls_in_no_heavy_modules():
    banned = ["re", "json", "enum", "dataclasses", "typing", "signal", "socket", "pathlib", "subprocess", "logging",
              "ctypes"]
    probe = ("import sys; before = set(sys.modules); "
             "import orlop.linux.cgroups, orlop.linux.cgroups.v1, orlop.linux.cgroups.v2, orlop.linux.cgroups.devices; "
             f"print(sorted(m for m in {banned!r} if m in sys.modules and m not in before))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
