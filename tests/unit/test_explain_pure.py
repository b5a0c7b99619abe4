"""The pure parts of `orlop explain`: /proc text formats, cgroup location and limits on fake
trees, capability sets, the seccomp profile's name, layers traced from lower dirs, mounts
against the host's, what a layer adds, and the text rendering (aligned, colour only when
asked)."""

from __future__ import annotations

import io
import os
import tarfile

from orlop.cli.explain_view import render, table, wrap
from orlop.containers.explain import cgroup, layer_changes, namespaces, rootfs, security
from orlop.containers.explain.image import layer_table
from orlop.linux import procfs
from orlop.linux.cgroups.common import Hierarchies
from orlop.snapshots import chain_ids

STATUS = """Name:\tsleep
State:\tS (sleeping)
PPid:\t9128
NSpid:\t9130\t1
NoNewPrivs:\t1
Seccomp:\t2
Seccomp_filters:\t1
CapEff:\t00000000a80425fb
CapBnd:\t00000000a80425fb
CapPrm:\t00000000a80425fb
CapInh:\t0000000000000000
CapAmb:\t0000000000000000
"""

MOUNTINFO = r"""103 60 0:49 / / rw,relatime - overlay overlay rw,lowerdir=/s/2/fs:/s/1/fs,upperdir=/s/3/fs,workdir=/s/3/work
104 103 0:52 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
120 103 254:0 /data/my\040dir/hostname /etc/hostname rw,relatime - ext4 /dev/vda rw
64 104 0:52 /sys /proc/sys ro,relatime - proc proc rw
66 104 0:53 /null /proc/keys rw,nosuid - tmpfs tmpfs rw,size=65536k
"""


def test_status_nspid_and_namespace_links():
    status = procfs.parse_status(STATUS)
    assert status["Seccomp"] == "2" and procfs.nspid(status) == [9130, 1]
    assert procfs.parse_ns_link("net:[4026531833]") == 4026531833
    assert procfs.parse_ns_link("pid_for_children:[4026532375]") == 4026532375


def test_mountinfo_with_escapes_and_overlay_dirs():
    mounts = procfs.parse_mountinfo(MOUNTINFO)
    assert [m["mount_point"] for m in mounts] == ["/", "/proc", "/etc/hostname", "/proc/sys", "/proc/keys"]
    assert mounts[2]["root"] == "/data/my dir/hostname" and mounts[3]["options"] == "ro,relatime"
    dirs = procfs.overlay_dirs(mounts[0]["super_options"])
    assert dirs == {"lowerdir": ["/s/2/fs", "/s/1/fs"], "upperdir": ["/s/3/fs"], "workdir": ["/s/3/work"]}


def test_id_maps_and_process_tree():
    assert procfs.parse_id_map("         0          0 4294967295\n") == procfs.IDENTITY_MAP
    assert procfs.parse_id_map("0 100000 65536\n1 2 3\n")[1] == {"inside": 1, "outside": 2, "count": 3}
    assert procfs.parse_stat_ppid(b"42 (a b) c) S 7 42 42 0") == 7
    table_ = {10: 1, 11: 10, 12: 11, 13: 10, 20: 1}
    assert procfs.descendants(10, table_) == [(10, 0), (11, 1), (12, 2), (13, 1)]


def test_namespaces_marked_new_or_shared():
    rows = namespaces.compare({"net": 5, "pid": 7, "user": 1}, {"net": 4, "pid": 7, "user": None})
    by_type = {r["type"]: r for r in rows}
    assert [r["type"] for r in rows] == list(procfs.NAMESPACE_KINDS)
    assert by_type["net"]["new"] is True and by_type["pid"]["new"] is False and by_type["user"]["new"] is None


def _hybrid() -> Hierarchies:
    return Hierarchies({"memory": "/sys/fs/cgroup/memory", "cpu": "/sys/fs/cgroup/cpu",
                        "cpuacct": "/sys/fs/cgroup/cpu", "name=systemd": "/sys/fs/cgroup/systemd"},
                       "/sys/fs/cgroup/unified", {})


def test_cgroup_located_on_hybrid_and_unified_hosts():
    text = "4:memory:/orlop/abc\n2:cpu,cpuacct:/orlop/abc\n1:name=systemd:/orlop/abc\n0::/\n"
    where = cgroup.locate(text, _hybrid())
    assert where["mode"] == "hybrid" and where["version"] == 1
    assert where["paths"] == {"cpu": "/sys/fs/cgroup/cpu/orlop/abc", "cpuacct": "/sys/fs/cgroup/cpu/orlop/abc",
                              "memory": "/sys/fs/cgroup/memory/orlop/abc",
                              "name=systemd": "/sys/fs/cgroup/systemd/orlop/abc"}
    assert where["unified"] == "/sys/fs/cgroup/unified" and where["relative"]["cgroup2"] == "/"
    unified = Hierarchies({}, "/sys/fs/cgroup", {})
    where = cgroup.locate("0::/orlop/abc\n", unified)
    assert where == {"mode": "unified", "version": 2, "paths": {}, "unified": "/sys/fs/cgroup/orlop/abc",
                     "relative": {"cgroup2": "/orlop/abc"}}


def _write(directory, **files) -> None:
    os.makedirs(directory, exist_ok=True)
    for name, value in files.items():
        with open(os.path.join(directory, name.replace("__", ".")), "w") as f:
            f.write(value)


def test_v1_limits_and_usage_from_files(tmp_path):
    root = str(tmp_path)
    _write(f"{root}/memory", memory__limit_in_bytes="9223372036854771712\n")
    _write(f"{root}/memory/orlop", memory__limit_in_bytes="33554432\n")
    _write(f"{root}/memory/orlop/abc", memory__limit_in_bytes="67108864\n", memory__usage_in_bytes="4096\n",
           memory__max_usage_in_bytes="8192\n", memory__oom_control="oom_kill_disable 0\noom_kill 2\n")
    _write(f"{root}/cpu/orlop/abc", cpu__cfs_quota_us="50000\n", cpu__cfs_period_us="100000\n", cpu__shares="512\n")
    _write(f"{root}/pids/orlop/abc", pids__max="max\n", pids__current="3\n")
    paths = {c: f"{root}/{c}/orlop/abc" for c in ("memory", "cpu", "pids")}
    limits, usage = cgroup.v1_figures(paths, {"memory": f"{root}/memory"})
    assert limits["memory"] == 67108864 and limits["memory_effective"] == 33554432
    assert limits["cpu_quota_us"] == 50000 and limits["cpus"] == 0.5 and limits["cpu_shares"] == 512
    assert limits["pids"] is None and usage == {"memory": 4096, "memory_peak": 8192, "cpu_ns": None, "pids": 3,
                                                "oom_kills": 2}


def test_v2_limits_and_usage_from_files(tmp_path):
    root = str(tmp_path)
    _write(f"{root}/orlop/abc", memory__max="67108864\n", memory__swap__max="max\n", memory__current="100\n",
           cpu__max="max 100000\n", cpu__weight="100\n", pids__max="50\n", pids__current="1\n",
           cpu__stat="usage_usec 1500\nuser_usec 1000\n", memory__events="oom 0\noom_kill 1\n")
    limits, usage = cgroup.v2_figures(f"{root}/orlop/abc", root)
    assert limits["memory"] == limits["memory_effective"] == 67108864 and limits["memory_swap"] is None
    assert limits["cpu_quota_us"] is None and limits["cpu_period_us"] == 100000 and limits["cpu_weight"] == 100
    assert limits["pids"] == 50 and usage["cpu_ns"] == 1_500_000 and usage["oom_kills"] == 1


def test_capabilities_kept_and_dropped():
    caps = security.capabilities(procfs.parse_status(STATUS), 40)
    assert len(caps["kept"]) == 14 and "CAP_CHOWN" in caps["kept"] and "CAP_SYS_ADMIN" in caps["dropped"]
    assert len(caps["kept"]) + len(caps["dropped"]) == 41 and caps["bounding_only"] == []
    none = security.capabilities({"CapEff": "0", "CapBnd": "0"}, 40)
    assert none["kept"] == [] and len(none["dropped"]) == 41


def test_seccomp_profile_names():
    assert security.seccomp_profile_name({}, True) == "default"
    assert security.seccomp_profile_name({}, False) == "none"
    assert security.seccomp_profile_name({"SecurityOpt": ["seccomp=unconfined"]}, True) == "unconfined"
    assert security.seccomp_profile_name({"SecurityOpt": ["seccomp:unconfined"]}, True) == "unconfined"
    assert security.seccomp_profile_name({"SecurityOpt": ['seccomp={"defaultAction": "x"}']}, True) == "custom"
    assert security.seccomp_profile_name({"Privileged": True}, True) == "unconfined"


def test_layers_traced_from_lower_dirs():
    diff_ids = ["sha256:" + "a" * 64, "sha256:" + "b" * 64]
    chains = chain_ids(diff_ids)
    manifest = {"layers": [{"digest": "sha256:" + "c" * 64, "size": 10}, {"digest": "sha256:" + "d" * 64, "size": 2}]}
    config = {"rootfs": {"diff_ids": diff_ids}, "history": [{"created_by": "ADD x"}, {"created_by": "ENV A=1",
                                                                                       "empty_layer": True},
                                                              {"created_by": "RUN y"}]}
    table_ = layer_table(manifest, config)
    assert [la["created_by"] for la in table_] == ["ADD x", "RUN y"] and table_[1]["chain_id"] == chains[1]
    traced = rootfs.layers(["/s/2/fs", "/s/1/fs", "/elsewhere"], {"/s/2/fs": chains[1], "/s/1/fs": chains[0]},
                           table_)
    assert [t["index"] for t in traced] == [1, 0, None] and traced[0]["digest"] == "sha256:" + "d" * 64


def test_mounts_compared_with_the_hosts():
    container = procfs.parse_mountinfo(MOUNTINFO)
    host = procfs.parse_mountinfo("1 0 254:0 / / rw - ext4 /dev/vda rw\n2 1 0:52 / /proc rw - proc proc rw\n")
    marked = {m["mount_point"]: m["host"] for m in rootfs.differing_mounts(container, host)}
    assert marked == {"/": "different", "/proc": "same", "/etc/hostname": "container-only",
                      "/proc/sys": "container-only", "/proc/keys": "container-only"}
    special = rootfs.special_paths(["/proc/sys", "/proc/keys", "/proc/kcore"], container, True,
                                   exists=lambda p: p != "/proc/kcore")
    assert [(s["applied"], s["exists"]) for s in special] == [(True, True), (False, True), (False, False)]
    assert rootfs.special_paths(["/proc/sys"], None, True)[0] == {"path": "/proc/sys", "applied": None,
                                                                  "exists": None}


def _tar(entries: list[tuple[str, str]]) -> io.BytesIO:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tf:
        for name, kind in entries:
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE if kind == "dir" else tarfile.REGTYPE
            tf.addfile(info, io.BytesIO(b""))
    data.seek(0)
    return data


def test_layer_changes_from_tars():
    base = list(layer_changes.entries_from_tar(_tar([("bin", "dir"), ("bin/ls", "file"), ("bin/true", "file"),
                                                     ("etc", "dir"), ("etc/os-release", "file"),
                                                     ("var", "dir"), ("var/a", "file")])))
    top = list(layer_changes.entries_from_tar(_tar([("./bin/", "dir"), ("./bin/.wh.true", "file"),
                                                    ("./etc/os-release", "file"), ("./newfile", "file"),
                                                    ("var/.wh..wh..opq", "file"), ("var/b", "file")])))
    assert ("bin/true", "whiteout") in top and ("var", "opaque") in top
    counts = layer_changes.count_changes([base, top])
    assert counts[0] == {"added": 7, "changed": 0, "deleted": 0}
    assert counts[1] == {"added": 2, "changed": 2, "deleted": 1}  # newfile, var/b; os-release, var (opaque)


def test_layer_changes_from_an_overlay_dir(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "new").write_text("x")
    os.mknod(tmp_path / "gone", 0o600 | 0o020000, 0)  # a 0:0 character device: overlay's whiteout
    entries = sorted(layer_changes.entries_from_dir(str(tmp_path)))
    assert entries == [("etc", "dir"), ("etc/new", "file"), ("gone", "whiteout")]


def test_wrap_and_table_alignment():
    assert wrap(["aaaa", "bb", "cc"], 7) == ["aaaa bb", "cc"]
    lines = table([["A", "LONG HEADER", "x"], ["long cell", "b", "y"]])
    assert lines == ["  A          LONG HEADER  x", "  long cell  b            y"]


def _container_answer() -> dict:
    return {
        "kind": "container", "version": 1, "id": "f" * 64, "name": "demo", "status": "running",
        "image": {"name": "busybox", "id": "sha256:" + "1" * 64}, "runtime": "orlop-runtime",
        "process": {"host_pid": 9130, "pid": 1, "nspid": [9130, 1],
                    "shim": {"pid": 9128, "alive": True, "socket": "/run/o/c/x/shim.sock"},
                    "runtime_state": {"path": "/run/o/runtime/x/state.json", "init_process_pid": 9130,
                                      "namespace_paths": {"NEWPID": "/proc/9130/ns/pid"}},
                    "tree": [{"host_pid": 9128, "pid": None, "depth": 0, "role": "shim", "command": "orlop-shim"},
                             {"host_pid": 9130, "pid": 1, "depth": 1, "role": "init", "command": "sleep 1000"}]},
        "namespaces": {"reference": {"note": "host = orlopd's"},
                       "list": namespaces.compare({k: 4026532000 + i for i, k in enumerate(procfs.NAMESPACE_KINDS)},
                                                  {k: 4026531000 for k in procfs.NAMESPACE_KINDS})},
        "rootfs": None, "cgroup": None, "capabilities": None, "network": None, "exit": None,
    }


def test_render_is_plain_without_colour_and_coloured_with_it():
    text = render(_container_answer())
    assert "\x1b" not in text
    assert next(line for line in text.splitlines() if "PID inside" in line).split() == ["PID", "inside", "1"]
    rows = [line for line in text.splitlines() if line.startswith("  ") and "40265" in line]
    assert len(rows) == len(procfs.NAMESPACE_KINDS)
    assert len({line.index("40265") for line in rows}) == 1  # the HOST column lines up
    assert "└─ sleep 1000" in text
    coloured = render(_container_answer(), colour=True)
    assert "\x1b[1m" in coloured and "\x1b[32mnew" in coloured
    plain_widths = [len(line) for line in text.splitlines()]
    stripped = [len(line.replace("\x1b[1m", "").replace("\x1b[32m", "").replace("\x1b[2m", "").replace("\x1b[0m", ""))
                for line in coloured.splitlines()]
    assert plain_widths == stripped  # colour never shifts a column


def test_render_a_stopped_container_and_an_image():
    answer = _container_answer()
    answer.update(process=None, namespaces=None, status="exited",
                  exit={"exit_code": 137, "oom_killed": False, "finished_at": "2026-01-01T00:00:00Z", "error": None},
                  left={"upper_dir": "/d/3/fs", "upper_size": 12, "log_path": None, "runtime_state": None})
    text = render(answer)
    assert "128 + signal 9" in text and "runtime state   gone" in text
    image = {"kind": "image", "id": "sha256:" + "2" * 64, "names": ["busybox:latest"], "os": "linux",
             "architecture": "amd64", "size": 2_000_000, "created": None, "config": {"cmd": ["sh"]},
             "layers": [{"index": 0, "digest": "sha256:" + "3" * 64, "size": 2_000_000, "created_by": "ADD x",
                         "changes": {"added": 279, "changed": 0, "deleted": 0}}]}
    text = render(image)
    assert text.startswith("IMAGE  busybox:latest") and "279" in text and "ADDED" in text
