"""The cgroup layer against the real kernel (root): limits land in the kernel's files and
are enforced (pids.max, memory OOM kill, device rules on v1 and through eBPF on v2),
processes join, freeze, thaw and are killed, and everything is removed afterwards.

On the hybrid development host the v1 tests use the v1 hierarchies and the v2 tests
the cgroup2 tree at /sys/fs/cgroup/unified (freezing, cgroup.kill and device filters
need no controller there); on a unified host the v2 tests also check memory, cpu and
pids, which this host's cgroup2 tree does not offer.
"""

from __future__ import annotations

import errno
import os
import signal
import time
import uuid

import pytest

from orlop.linux.cgroups import CgroupError, load_manager, open_manager, read_hierarchies

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root and a real cgroupfs")

HOST = read_hierarchies() if os.geteuid() == 0 else None
DENY_ALL_BUT_NULL = [{"allow": False, "access": "rwm"},
                     {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}]


def unique_name() -> str:
    return f"orlop-cgtest-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def read(directory: str, name: str) -> str:
    with open(os.path.join(directory, name)) as f:
        return f.read().strip()


def cleanup(manager) -> None:
    """Leave nothing behind: thaw, kill whatever is left, wait for it to go, rmdir."""
    if not any(os.path.isdir(d) for d in manager.distinct_dirs()):
        return
    try:
        if manager.can_freeze():
            manager.thaw()
        manager.kill_all(signal.SIGKILL)
    except CgroupError:
        pass
    deadline = time.monotonic() + 5
    while manager.pids() and time.monotonic() < deadline:
        time.sleep(0.01)
    manager.destroy()


class Child:
    """A forked process that waits until the test has put it in the cgroup, then runs
    `work` and reports its one-line result; it is killed and reaped on close()."""

    def __init__(self, work) -> None:
        go_r, self._go = os.pipe()
        self._out, out_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            try:
                os.close(self._go)
                os.close(self._out)
                os.read(go_r, 1)
                os.write(out_w, (str(work(out_w)) + "\n").encode())
                time.sleep(3600)
            finally:
                os._exit(0)
        os.close(go_r)
        os.close(out_w)
        self.status: int | None = None

    def start(self) -> None:
        os.write(self._go, b"x")

    def result(self, timeout: float = 10) -> str:
        line = b""
        deadline = time.monotonic() + timeout
        os.set_blocking(self._out, False)
        while not line.endswith(b"\n"):
            try:
                chunk = os.read(self._out, 1)
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"child {self.pid} said nothing within {timeout} s") from None
                time.sleep(0.005)
                continue
            if not chunk:
                raise AssertionError(f"child {self.pid} closed its pipe (died?) after {line!r}")
            line += chunk
        return line.decode().strip()

    def drain(self) -> bytes:
        os.set_blocking(self._out, False)
        data = b""
        while True:
            try:
                chunk = os.read(self._out, 4096)
            except BlockingIOError:
                return data
            if not chunk:
                return data
            data += chunk

    def wait(self, timeout: float = 5) -> int:
        deadline = time.monotonic() + timeout
        while self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = status
            elif time.monotonic() > deadline:
                raise AssertionError(f"child {self.pid} did not exit")
            else:
                time.sleep(0.005)
        return self.status

    def close(self) -> None:
        if self.status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.wait()
        os.close(self._go)
        os.close(self._out)


def ticker(out_fd: int) -> str:
    """Write a dot every 5 ms forever: a frozen process stops ticking."""
    while True:
        os.write(out_fd, b".")
        time.sleep(0.005)


def fork_until_refused(out_fd: int) -> str:
    """Fork sleeping children until the kernel refuses; report how many and why."""
    count = 0
    while count < 100:
        try:
            pid = os.fork()
        except OSError as e:
            return f"{count} {errno.errorcode[e.errno]}"
        if pid == 0:
            time.sleep(3600)
            os._exit(0)
        count += 1
    return f"{count} none"


def open_devices(out_fd: int) -> str:
    results = []
    for device in ("/dev/null", "/dev/zero"):
        try:
            os.close(os.open(device, os.O_RDWR))
            results.append("ok")
        except OSError as e:
            results.append(errno.errorcode[e.errno])
    return " ".join(results)


def allocate_128_mib(out_fd: int) -> str:
    data = b"\x01" * (128 << 20)  # filled, so every page is charged
    return f"survived {len(data)}"


def process_state(pid: int) -> str:
    with open(f"/proc/{pid}/status") as f:
        return next(line.split()[1] for line in f if line.startswith("State:"))


def assert_freezes_and_thaws(manager, child: Child) -> None:
    time.sleep(0.05)  # the ticker never ends its line: watch its dots
    assert child.drain(), "ticking before the freeze"
    manager.freeze()
    assert manager.is_frozen()
    child.drain()
    time.sleep(0.2)
    assert child.drain() == b"", "a frozen process made progress"
    assert process_state(child.pid) in ("D", "S", "T")  # v1 shows D, v2 S: parked in the freezer
    manager.thaw()
    assert not manager.is_frozen()
    time.sleep(0.1)
    assert child.drain(), "thawed, it ticks again"


# --- layout ---------------------------------------------------------------------------------

def test_layout_matches_what_the_kernel_shows():
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        assert HOST.mode == "unified"
    elif os.path.exists("/sys/fs/cgroup/unified/cgroup.controllers"):
        assert HOST.mode == "hybrid" and HOST.v2_mount == "/sys/fs/cgroup/unified"
    else:
        assert HOST.mode == "legacy"
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for controller in controllers.split(",") if controllers else [""]:
                assert HOST.own[controller] == path


# --- cgroup v1 (legacy and hybrid hosts) ---------------------------------------------------------

@pytest.fixture
def v1_cgroup():
    if HOST.mode == "unified":
        pytest.skip("no cgroup v1 hierarchies on this host")
    manager = open_manager("/" + unique_name(), "x")
    try:
        manager.create()
        yield manager
    finally:
        cleanup(manager)
    assert not any(os.path.exists(d) for d in manager.distinct_dirs()), "destroy removed every directory"


def test_v1_limits_reach_the_kernel(v1_cgroup):
    m = v1_cgroup
    memory = m.paths["memory"]
    has_memsw = os.path.exists(f"{memory}/memory.memsw.limit_in_bytes")
    swap = 128 << 20 if has_memsw else None
    m.apply({"memory": {"limit": 64 << 20, "swap": swap, "reservation": 32 << 20},
             "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
             "pids": {"limit": 5}})
    assert read(memory, "memory.limit_in_bytes") == str(64 << 20)
    assert read(memory, "memory.soft_limit_in_bytes") == str(32 << 20)
    assert read(m.paths["cpu"], "cpu.shares") == "512"
    assert read(m.paths["cpu"], "cpu.cfs_quota_us") == "50000"
    assert read(m.paths["cpu"], "cpu.cfs_period_us") == "100000"
    assert read(m.paths["cpuset"], "cpuset.cpus") == "0"
    assert read(m.paths["pids"], "pids.max") == "5"
    if not has_memsw:
        return
    assert read(memory, "memory.memsw.limit_in_bytes") == str(128 << 20)
    # The kernel keeps limit <= memsw after every write: these pass only in the right order.
    m.apply({"memory": {"limit": 16 << 20, "swap": 24 << 20}})     # both down
    m.apply({"memory": {"limit": 256 << 20, "swap": 512 << 20}})   # both up, past the old memsw
    m.apply({"memory": {"limit": -1}})                              # unlimited: memsw follows
    assert int(read(memory, "memory.limit_in_bytes")) >= 1 << 62
    assert int(read(memory, "memory.memsw.limit_in_bytes")) >= 1 << 62


def test_v1_kernel_refusals_name_file_and_value(v1_cgroup):
    with pytest.raises(CgroupError, match=r"writing '1' to .*cpu.cfs_quota_us: Invalid argument"):
        v1_cgroup.apply({"cpu": {"quota": 1}})  # below the kernel's 1 ms minimum


def test_v1_process_joins_freezes_thaws_and_is_signalled(v1_cgroup):
    m = v1_cgroup
    child = Child(ticker)
    try:
        m.add_pid(child.pid)
        child.start()
        assert m.pids() == [child.pid]
        with open(f"/proc/{child.pid}/cgroup") as f:
            memory_line = next(line for line in f if ":memory:" in line)
        assert m.paths["memory"].endswith(memory_line.strip().split(":", 2)[2])
        assert_freezes_and_thaws(m, child)
        m.kill_all(signal.SIGTERM)
        assert os.WTERMSIG(child.wait()) == signal.SIGTERM
        assert m.pids() == []
    finally:
        child.close()


def test_v1_pids_max_stops_forks(v1_cgroup):
    m = v1_cgroup
    m.apply({"pids": {"limit": 4}})
    child = Child(fork_until_refused)
    try:
        m.add_pid(child.pid)
        child.start()
        assert child.result() == "3 EAGAIN"  # the child itself is the 4th
        assert len(m.pids()) == 4
        assert m.stats()["pids"] == {"current": 4, "limit": 4}
        m.kill_all(signal.SIGKILL)
        child.wait()
    finally:
        child.close()


def test_v1_memory_limit_oom_kills(v1_cgroup):
    m = v1_cgroup
    has_memsw = os.path.exists(f"{m.paths['memory']}/memory.memsw.limit_in_bytes")
    m.apply({"memory": {"limit": 32 << 20, "swap": (32 << 20) if has_memsw else None}})
    child = Child(allocate_128_mib)
    try:
        m.add_pid(child.pid)
        child.start()
        assert os.WTERMSIG(child.wait(timeout=30)) == signal.SIGKILL
        assert m.oom_kill_count() >= 1
        stats = m.stats()["memory"]
        assert stats["oom_kill"] >= 1 and stats["limit"] == 32 << 20 and stats["max_usage"] >= 30 << 20
    finally:
        child.close()


def test_v1_device_rules_are_enforced(v1_cgroup):
    m = v1_cgroup
    m.apply({"devices": DENY_ALL_BUT_NULL})
    assert read(m.paths["devices"], "devices.list") == "c 1:3 rw"
    child = Child(open_devices)
    try:
        m.add_pid(child.pid)
        child.start()
        assert child.result() == "ok EPERM"
    finally:
        child.close()


def test_v1_systemd_path_lands_where_systemd_would_put_the_scope():
    if HOST.mode == "unified":
        pytest.skip("no cgroup v1 hierarchies on this host")
    slice_name = f"orloptest{uuid.uuid4().hex[:8]}.slice"  # a private slice: no race with other tests
    m = open_manager(f"{slice_name}:orlop:c1", "c1", systemd=True)
    try:
        m.create()
        assert os.path.isdir(f"{HOST.v1['memory']}/{slice_name}/orlop-c1.scope")
        assert m.paths["pids"] == f"{HOST.v1['pids']}/{slice_name}/orlop-c1.scope"
    finally:
        cleanup(m)
        for mountpoint in set(HOST.v1.values()):
            if os.path.isdir(f"{mountpoint}/{slice_name}"):
                os.rmdir(f"{mountpoint}/{slice_name}")


def test_hybrid_host_uses_the_cgroup2_tree_when_asked():
    if HOST.mode != "hybrid":
        pytest.skip("not a hybrid host")
    if not os.path.exists(f"{HOST.v2_mount}/cgroup.controllers"):
        pytest.skip("no cgroup2 tree")
    name = unique_name()
    m = open_manager(f"/{name}/c1", "c1", resources={"unified": {"cgroup.max.descendants": "5"}})
    child = Child(ticker)
    try:
        m.create()
        m.apply({"unified": {"cgroup.max.descendants": "5"}})
        assert read(m.unified_dir, "cgroup.max.descendants") == "5"
        m.add_pid(child.pid)
        child.start()
        with open(f"/proc/{child.pid}/cgroup") as f:
            assert f"0::/{name}/c1\n" in f.read()
        m.kill_all(signal.SIGKILL)  # through cgroup.kill of the cgroup2 directory
        assert os.WTERMSIG(child.wait()) == signal.SIGKILL
    finally:
        child.close()
        cleanup(m)
        for directory in {os.path.dirname(d) for d in m.distinct_dirs()}:
            os.rmdir(directory)


# --- cgroup v2 (the unified tree; on a hybrid host the one at /sys/fs/cgroup/unified) ----------

@pytest.fixture
def v2_cgroup():
    if not HOST.v2_mount or not os.path.exists(f"{HOST.v2_mount}/cgroup.controllers"):
        pytest.skip("no cgroup2 tree on this host")
    name = unique_name()
    if HOST.mode == "unified":
        manager = open_manager(f"/{name}/c1", "c1")
    else:
        manager = load_manager({"": f"{HOST.v2_mount}/{name}/c1"})
    try:
        manager.create()
        yield manager
    finally:
        cleanup(manager)
        parent = os.path.dirname(manager.path)
        if os.path.isdir(parent):
            os.rmdir(parent)
    assert not os.path.exists(manager.path)


def test_v2_create_delegates_the_available_controllers(v2_cgroup):
    parent = os.path.dirname(v2_cgroup.path)
    for directory in (HOST.v2_mount, parent):
        available = set(read(directory, "cgroup.controllers").split())
        assert available <= set(read(directory, "cgroup.subtree_control").split())
    assert read(v2_cgroup.path, "cgroup.controllers").split() == read(parent, "cgroup.controllers").split()


def test_v2_process_joins_freezes_thaws_and_is_signalled(v2_cgroup):
    m = v2_cgroup
    child = Child(ticker)
    try:
        m.add_pid(child.pid)
        child.start()
        assert m.pids() == [child.pid]
        assert_freezes_and_thaws(m, child)
        assert "frozen 0" in read(m.path, "cgroup.events")
        m.kill_all(signal.SIGTERM)  # freeze, signal each, thaw
        assert os.WTERMSIG(child.wait()) == signal.SIGTERM
    finally:
        child.close()


def test_v2_pids_are_recursive_and_sigkill_reaches_sub_cgroups(v2_cgroup):
    m = v2_cgroup
    outer, inner = Child(ticker), Child(ticker)
    try:
        m.add_pid(outer.pid)
        os.mkdir(f"{m.path}/nested")  # a cgroup the container made for itself
        with open(f"{m.path}/nested/cgroup.procs", "w") as f:
            f.write(str(inner.pid))
        outer.start()
        inner.start()
        assert m.pids() == sorted([outer.pid, inner.pid])
        m.kill_all(signal.SIGKILL)
        assert os.WTERMSIG(outer.wait()) == os.WTERMSIG(inner.wait()) == signal.SIGKILL
        deadline = time.monotonic() + 5
        while m.pids() and time.monotonic() < deadline:
            time.sleep(0.01)
        m.destroy()  # the nested cgroup goes first
        assert not os.path.exists(m.path)
    finally:
        outer.close()
        inner.close()


def test_v2_device_rules_are_enforced_by_ebpf(v2_cgroup):
    from orlop.linux.cgroups import bpf

    m = v2_cgroup
    m.apply({"devices": DENY_ALL_BUT_NULL})
    m.apply({"devices": DENY_ALL_BUT_NULL})  # an update replaces the filter
    assert bpf.attached_count(m.path) == 1
    child = Child(open_devices)
    try:
        m.add_pid(child.pid)
        child.start()
        assert child.result() == "ok EPERM"
    finally:
        child.close()


def test_v2_hugepage_limit(v2_cgroup):
    m = v2_cgroup
    if "hugetlb" not in read(m.path, "cgroup.controllers").split() or not os.path.exists(f"{m.path}/hugetlb.2MB.max"):
        pytest.skip("no hugetlb controller for 2 MB pages here")
    m.apply({"hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 20}]})
    assert read(m.path, "hugetlb.2MB.max") == str(4 << 20)


def test_v2_limits_and_pids_max(v2_cgroup):
    m = v2_cgroup
    available = read(m.path, "cgroup.controllers").split()
    if not {"memory", "pids", "cpu"} <= set(available):
        pytest.skip(f"this cgroup2 tree offers only {available}: memory, cpu and pids are v1 here")
    m.apply({"memory": {"limit": 64 << 20, "reservation": 16 << 20},
             "cpu": {"shares": 1024, "quota": 50000, "period": 100000}, "pids": {"limit": 4}})
    assert read(m.path, "memory.max") == str(64 << 20)
    assert read(m.path, "memory.low") == str(16 << 20)
    assert read(m.path, "cpu.weight") == "39"
    assert read(m.path, "cpu.max") == "50000 100000"
    child = Child(fork_until_refused)
    try:
        m.add_pid(child.pid)
        child.start()
        assert child.result() == "3 EAGAIN"
        assert m.stats()["pids"] == {"current": 4, "limit": 4}
    finally:
        child.close()
