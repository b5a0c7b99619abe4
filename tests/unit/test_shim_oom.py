"""The shim's OOM detection on fake /proc and cgroup trees: the kill counter of the container's
memory cgroup found on v1, hybrid and v2 hosts (wherever the hierarchies are mounted)."""

from __future__ import annotations

import pytest

from orlop.shim import oom

HYBRID_CGROUP = "9:name=systemd:/\n8:pids:/orlop/c1\n4:memory:/orlop/c1\n1:cpu,cpuacct:/orlop/c1\n0::/\n"
UNIFIED_CGROUP = "0::/system.slice/orlop/c1\n"


def mountinfo(tmp_path, lines: list[str]) -> str:
    path = tmp_path / "mountinfo"
    path.write_text("".join(f"{n} 23 0:{n} {line}\n" for n, line in enumerate(lines, 30)))
    return str(path)


def proc(tmp_path, text: str) -> str:
    (tmp_path / "proc" / "42").mkdir(parents=True)
    (tmp_path / "proc" / "42" / "cgroup").write_text(text)
    return str(tmp_path / "proc")


def test_v1_memory_hierarchy_wherever_it_is_mounted(tmp_path):
    info = mountinfo(tmp_path, [
        f"/ {tmp_path}/cg/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct",
        f"/ {tmp_path}/cg/mem\\040ory rw,nosuid - cgroup cgroup rw,memory",
        f"/ {tmp_path}/cg/unified rw - cgroup2 cgroup2 rw",
    ])
    found = oom.counter_file(42, proc(tmp_path, HYBRID_CGROUP), info)
    assert found == f"{tmp_path}/cg/mem ory/orlop/c1/memory.oom_control"


def test_v2_memory_events(tmp_path):
    events = tmp_path / "cg" / "system.slice" / "orlop" / "c1"
    events.mkdir(parents=True)
    (events / "memory.events").write_text("low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\noom_group_kill 0\n")
    info = mountinfo(tmp_path, [f"/ {tmp_path}/cg rw,nosuid - cgroup2 cgroup2 rw,nsdelegate"])
    found = oom.counter_file(42, proc(tmp_path, UNIFIED_CGROUP), info)
    assert found == str(events / "memory.events")
    assert oom.kills(found) == 2


def test_a_mount_rooted_inside_the_hierarchy(tmp_path):
    procs = proc(tmp_path, HYBRID_CGROUP)
    info = mountinfo(tmp_path, [f"/orlop {tmp_path}/memory rw - cgroup cgroup rw,memory"])
    assert oom.counter_file(42, procs, info) == f"{tmp_path}/memory/c1/memory.oom_control"
    info = mountinfo(tmp_path, [f"/elsewhere {tmp_path}/memory rw - cgroup cgroup rw,memory"])
    assert oom.counter_file(42, procs, info) is None


@pytest.mark.parametrize("cgroup, lines", [
    (HYBRID_CGROUP, ["/ /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu"]),  # no memory hierarchy, no cgroup2
    (UNIFIED_CGROUP, ["/ /nonexistent rw - cgroup2 cgroup2 rw"]),         # no memory.events there
])
def test_no_memory_cgroup_means_no_counter(tmp_path, cgroup, lines):
    assert oom.counter_file(42, proc(tmp_path, cgroup), mountinfo(tmp_path, lines)) is None
    assert oom.kills(None) == 0


def test_v1_oom_control_and_a_vanished_file(tmp_path):
    control = tmp_path / "memory.oom_control"
    control.write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")
    assert oom.kills(str(control)) == 3
    control.unlink()
    assert oom.kills(str(control)) == 0
    assert oom.counter_file(7, str(tmp_path), str(tmp_path / "mountinfo")) is None  # the process is gone
