"""`orlop explain` and GET /containers/{id}/explain, /images/{name}/explain against the
kernel's own view: every figure is read again here, independently, from /proc/<pid>/status,
/proc/<pid>/ns/*, the cgroup files, `ip -o addr` inside the container's network namespace,
the runtime's state.json and the layer tars, for containers run with the defaults and with
--network host, --pid host, --cap-drop ALL, --memory, --read-only, a stopped one, a killed
one, and images. The CLI's text is aligned, has no escape codes off a terminal (and colour
on one), and the JSON form keeps its documented keys."""

from __future__ import annotations

import hashlib
import json
import os
import pty
import select
import shutil
import subprocess
import tarfile
import time

import pytest
from conftest import needs_root
from daemon_fixture import DOCKER, REPO, running_daemon

pytestmark = [needs_root, pytest.mark.skipif(not os.path.exists(DOCKER), reason="no docker CLI")]

ORLOP = os.path.join(REPO, ".venv", "bin", "orlop")
KINDS = ("cgroup", "ipc", "mnt", "net", "pid", "pid_for_children", "time", "time_for_children", "user", "uts")
DOCKER_DEFAULT_CAPS = {"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
                       "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
                       "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"}
# The documented top-level keys (docs/explain.md): scripts rely on them.
CONTAINER_KEYS = {"kind", "version", "id", "name", "image", "status", "runtime", "created", "started_at", "process",
                  "namespaces", "rootfs", "cgroup", "capabilities", "seccomp", "no_new_privs", "user_namespace",
                  "network", "exit", "left"}
IMAGE_KEYS = {"kind", "version", "id", "names", "created", "os", "architecture", "size", "config", "layers",
              "empty_steps"}


@pytest.fixture(scope="module")
def daemon():
    with running_daemon() as d:
        yield d


def orlop(daemon, *args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, "ORLOP_HOST": daemon.host, **(env or {})}
    done = subprocess.run([ORLOP, *args], capture_output=True, text=True, timeout=60, env=environment,
                          stdin=subprocess.DEVNULL)
    if check and done.returncode != 0:
        raise AssertionError(f"orlop {' '.join(args)} exited {done.returncode}: {done.stderr}\n{daemon.log()}")
    return done


def explain(daemon, name: str) -> dict:
    return json.loads(orlop(daemon, "explain", "--json", name).stdout)


def run(daemon, *args: str) -> tuple[str, int]:
    """docker run -d …; returns (id, host pid)."""
    cid = daemon.docker("run", "-d", *args).stdout.strip()
    return cid, int(daemon.docker("inspect", "-f", "{{.State.Pid}}", cid).stdout)


def status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return {k: v.strip() for k, _, v in (line.partition(":") for line in f)}


def inode(path: str) -> int:
    return int(os.readlink(path).split("[")[1].rstrip("]"))


def namespace_rows(answer: dict) -> dict[str, dict]:
    return {row["type"]: row for row in answer["namespaces"]["list"]}


def cgroup_dir(pid: int, controller: str) -> str:
    """The container's directory for `controller` ("" for cgroup2), as /proc/<pid>/cgroup says."""
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if controller in controllers.split(",") or (controller == "" and controllers == ""):
                base = "/sys/fs/cgroup" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else \
                    ("/sys/fs/cgroup/unified" if controller == "" else f"/sys/fs/cgroup/{controller}")
                return base + (path if path != "/" else "")
    raise AssertionError(f"no {controller!r} cgroup for {pid}")


def ip_addresses(netns: str) -> dict[str, set[str]]:
    """`ip -o addr` inside a network namespace: {interface: {address/prefix}}."""
    out = subprocess.run(["nsenter", f"--net={netns}", "--", "ip", "-o", "addr"], capture_output=True, text=True,
                         check=True).stdout
    found: dict[str, set[str]] = {}
    for line in out.splitlines():
        fields = line.split()
        found.setdefault(fields[1].split("@")[0], set()).add(fields[3])
    return found


# -- a container with the defaults ---------------------------------------------------------------

@pytest.fixture(scope="module")
def default_container(daemon):
    cid, pid = run(daemon, "--name", "plain", "-p", "18080:80", "busybox", "sleep", "1000")
    return cid, pid, explain(daemon, "plain")


def test_pids_inside_and_on_the_host(daemon, default_container):
    cid, pid, answer = default_container
    nspid = [int(p) for p in status(pid)["NSpid"].split()]
    process = answer["process"]
    assert answer["id"] == cid and answer["status"] == "running"
    assert process["host_pid"] == pid and process["nspid"] == nspid and process["pid"] == nspid[-1] == 1
    assert daemon.docker("exec", "plain", "cat", "/proc/1/cmdline").stdout.split("\0")[:2] == ["sleep", "1000"]


def test_shim_tree_and_runtime_state(daemon, default_container):
    cid, pid, answer = default_container
    process = answer["process"]
    with open(f"/proc/{pid}/stat") as f:
        parent = int(f.read().rsplit(")", 1)[1].split()[1])
    assert process["shim"]["pid"] == parent and process["shim"]["alive"]
    assert os.path.exists(process["shim"]["socket"]) and process["shim"]["socket"].startswith(daemon.exec_root)
    with open(f"/proc/{parent}/cmdline", "rb") as f:
        assert b"orlop-shim" in f.read()
    tree = {node["host_pid"]: node for node in process["tree"]}
    assert tree[parent]["role"] == "shim" and tree[parent]["pid"] is None
    assert tree[pid]["role"] == "init" and tree[pid]["pid"] == 1 and tree[pid]["ppid"] == parent
    assert tree[pid]["command"] == "sleep 1000"
    state_path = process["runtime_state"]["path"]
    assert state_path.startswith(daemon.exec_root) and state_path.endswith(f"/{cid}/state.json")
    with open(state_path) as f:
        state = json.load(f)
    assert state["init_process_pid"] == pid == process["runtime_state"]["init_process_pid"]
    assert process["runtime_state"]["namespace_paths"] == state["namespace_paths"]
    assert state["namespace_paths"]["NEWPID"] == f"/proc/{pid}/ns/pid"


def test_exec_processes_appear_with_both_pids(daemon, default_container):
    cid, pid, _ = default_container
    daemon.docker("exec", "-d", "plain", "sleep", "77")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        tree = explain(daemon, "plain")["process"]["tree"]
        extra = [n for n in tree if n["command"] == "sleep 77"]
        if extra:
            break
        time.sleep(0.1)
    node = extra[0]
    assert node["pid"] == int(status(node["host_pid"])["NSpid"].split()[-1]) and node["pid"] > 1


def test_namespaces_against_the_kernel(daemon, default_container):
    _, pid, answer = default_container
    rows = namespace_rows(answer)
    assert set(rows) == set(KINDS)
    reference = answer["namespaces"]["reference"]
    assert reference["pid"] == daemon.proc.pid
    assert reference["pid1_readable"] == os.access("/proc/1/ns/net", os.R_OK) or not reference["pid1_readable"]
    for kind in KINDS:
        assert rows[kind]["container"] == inode(f"/proc/{pid}/ns/{kind}"), kind
        assert rows[kind]["host"] == inode(f"/proc/{daemon.proc.pid}/ns/{kind}"), kind
        assert rows[kind]["new"] == (rows[kind]["container"] != rows[kind]["host"])
    for kind in ("ipc", "mnt", "net", "pid", "uts"):
        assert rows[kind]["new"] is True, kind
    assert rows["user"]["new"] is False and rows["time"]["new"] is False
    assert rows["net"]["host"] == os.stat(daemon.netns_path).st_ino  # orlopd runs in the test's netns


def test_capabilities_seccomp_and_user_maps(default_container):
    _, pid, answer = default_container
    st = status(pid)
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last = int(f.read())
    caps = answer["capabilities"]
    assert caps["last_cap"] == last
    assert int(caps["effective"], 16) == int(st["CapEff"], 16) and int(caps["bounding"], 16) == int(st["CapBnd"], 16)
    assert set(caps["kept"]) == DOCKER_DEFAULT_CAPS
    assert len(caps["kept"]) == bin(int(st["CapEff"], 16)).count("1")
    assert len(caps["dropped"]) == last + 1 - bin(int(st["CapBnd"], 16)).count("1")
    assert "CAP_SYS_ADMIN" in caps["dropped"] and not set(caps["dropped"]) & set(caps["kept"])
    assert answer["seccomp"]["mode"] == int(st["Seccomp"]) == 2 and answer["seccomp"]["profile"] == "default"
    assert answer["no_new_privs"] is (st["NoNewPrivs"] == "1")
    with open(f"/proc/{pid}/uid_map") as f:
        uid_map = [dict(zip(("inside", "outside", "count"), map(int, line.split()), strict=True)) for line in f]
    assert answer["user_namespace"]["uid_map"] == uid_map and answer["user_namespace"]["new"] is False


def test_cgroup_paths_and_usage(default_container):
    _, pid, answer = default_container
    cg = answer["cgroup"]
    hybrid = not os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    if hybrid:
        assert cg["version"] == 1
        for controller in ("memory", "cpu", "pids"):
            assert cg["paths"][controller] == cgroup_dir(pid, controller)
        assert cg["unified"] == cgroup_dir(pid, "")
        assert cg["limits"]["cpu_shares"] == int(open(cgroup_dir(pid, "cpu") + "/cpu.shares").read())
    else:
        assert cg["version"] == 2 and cg["unified"] == cgroup_dir(pid, "")
    assert cg["limits"]["memory"] is None and cg["limits"]["pids"] is None and cg["limits"]["cpu_quota_us"] is None
    assert cg["usage"]["pids"] >= 1 and cg["usage"]["memory"] > 0


def test_root_filesystem_layers_and_mounts(daemon, default_container):
    cid, pid, answer = default_container
    fs = answer["rootfs"]
    diff_ids = json.loads(daemon.docker("image", "inspect", "-f", "{{json .RootFS.Layers}}", "busybox").stdout)
    chains = [diff_ids[0]]
    for diff_id in diff_ids[1:]:
        chains.append("sha256:" + hashlib.sha256(f"{chains[-1]} {diff_id}".encode()).hexdigest())
    assert [layer["diff_id"] for layer in fs["layers"]] == diff_ids[::-1]  # top first, as lowerdir lists them
    assert [layer["chain_id"] for layer in fs["layers"]] == chains[::-1]
    graph = json.loads(daemon.docker("inspect", "-f", "{{json .GraphDriver.Data}}", cid).stdout)
    assert fs["upper_dir"] == graph["UpperDir"]
    assert [layer["lower_dir"] for layer in fs["layers"]] == graph["LowerDir"].split(":")
    with open(f"/proc/{pid}/mountinfo") as f:
        root = next(line for line in f if line.split()[4] == "/")
    assert f"upperdir={graph['UpperDir']}" in root and fs["readonly"] is False
    mounts = {m["mount_point"]: m for m in fs["mounts"]}
    assert mounts["/"]["fstype"] == "overlay" and mounts["/"]["host"] == "different"
    assert mounts["/etc/hostname"]["host"] == "container-only"
    masked = {p["path"]: p for p in fs["masked_paths"]}
    assert masked["/proc/keys"]["applied"] and masked["/proc/keys"]["exists"]
    readonly = {p["path"]: p for p in fs["readonly_paths"]}
    assert readonly["/proc/sys"]["applied"] and mounts["/proc/sys"]["readonly"]


def test_network_interfaces_and_ports(default_container):
    _, pid, answer = default_container
    net = answer["network"]
    assert net["mode"] == "bridge" and net["namespace_new"] is True
    seen = {i["name"]: set(i["addresses"]) for i in net["interfaces"]}
    kernel = ip_addresses(f"/proc/{pid}/ns/net")
    assert set(seen) == {"lo", "eth0"} and kernel == {name: seen[name] for name in kernel}
    assert any(a.startswith("172.") for a in seen["eth0"])
    assert {(p["container_port"], p["protocol"], p["host_port"]) for p in net["ports"]} == {(80, "tcp", 18080)}


# -- other settings ------------------------------------------------------------------------------

def test_host_network_shares_the_daemons_namespace(daemon):
    cid, _ = run(daemon, "--network", "host", "busybox", "sleep", "1000")
    answer = explain(daemon, cid)
    rows = namespace_rows(answer)
    assert rows["net"]["new"] is False and rows["net"]["container"] == os.stat(daemon.netns_path).st_ino
    assert rows["pid"]["new"] is True and answer["network"]["namespace_new"] is False
    seen = {i["name"]: set(i["addresses"]) for i in answer["network"]["interfaces"]}
    for name, addresses in ip_addresses(daemon.netns_path).items():
        assert seen[name] == addresses


def test_host_pid_namespace(daemon):
    cid, pid = run(daemon, "--pid", "host", "busybox", "sleep", "1000")
    answer = explain(daemon, cid)
    assert namespace_rows(answer)["pid"]["new"] is False
    assert answer["process"]["pid"] == answer["process"]["host_pid"] == pid
    assert answer["process"]["nspid"] == [pid] == [int(p) for p in status(pid)["NSpid"].split()]
    assert namespace_rows(answer)["mnt"]["new"] is True


def test_cap_drop_all_keeps_nothing(daemon):
    cid, pid = run(daemon, "--cap-drop", "ALL", "busybox", "sleep", "1000")
    caps = explain(daemon, cid)["capabilities"]
    assert caps["kept"] == [] and int(status(pid)["CapEff"], 16) == 0
    assert len(caps["dropped"]) == caps["last_cap"] + 1 and caps["bounding"] == "0" * 16


def test_memory_limit_matches_the_cgroup_file(daemon):
    cid, pid = run(daemon, "--memory", "64m", "--pids-limit", "50", "--cpus", "0.5", "busybox", "sleep", "1000")
    limits = explain(daemon, cid)["cgroup"]["limits"]
    assert limits["memory"] == 67108864
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        assert int(open(cgroup_dir(pid, "") + "/memory.max").read()) == 67108864
        assert int(open(cgroup_dir(pid, "") + "/pids.max").read()) == limits["pids"] == 50
    else:
        assert int(open(cgroup_dir(pid, "memory") + "/memory.limit_in_bytes").read()) == 67108864
        assert int(open(cgroup_dir(pid, "pids") + "/pids.max").read()) == limits["pids"] == 50
        assert int(open(cgroup_dir(pid, "cpu") + "/cpu.cfs_quota_us").read()) == limits["cpu_quota_us"]
    assert limits["memory_effective"] == 67108864 and limits["cpus"] == 0.5


def test_read_only_rootfs(daemon):
    cid, pid = run(daemon, "--read-only", "busybox", "sleep", "1000")
    fs = explain(daemon, cid)["rootfs"]
    with open(f"/proc/{pid}/mountinfo") as f:
        root = next(line.split() for line in f if line.split()[4] == "/")
    assert "ro" in root[5].split(",") and fs["readonly"] is True
    assert daemon.docker("exec", cid, "touch", "/x", check=False).returncode != 0


def test_stopped_container_shows_what_is_left(daemon):
    daemon.docker("run", "--name", "finished", "busybox", "sh", "-c", "echo bye; exit 3", check=False)
    answer = explain(daemon, "finished")
    assert answer["status"] == "exited" and answer["process"] is None and answer["cgroup"] is None
    assert answer["exit"]["exit_code"] == 3 and answer["exit"]["oom_killed"] is False
    assert answer["exit"]["finished_at"] == daemon.docker("inspect", "-f", "{{.State.FinishedAt}}",
                                                          "finished").stdout.strip()
    assert os.path.isdir(answer["left"]["upper_dir"]) and answer["left"]["log_size"] > 0
    assert answer["left"]["runtime_state"] is None
    assert answer["rootfs"]["layers"] and answer["rootfs"]["mounts"] is None


def test_kill_9_of_the_host_pid_stops_the_container(daemon):
    cid, pid = run(daemon, "busybox", "sleep", "1000")
    os.kill(pid, 9)
    assert daemon.docker("wait", cid).stdout.strip() == "137"
    answer = explain(daemon, cid)
    assert answer["exit"]["exit_code"] == 137 and answer["process"] is None
    text = orlop(daemon, "explain", cid).stdout
    assert "137" in text and "128 + signal 9" in text


# -- images --------------------------------------------------------------------------------------

def _layer_entries(daemon, digest: str) -> list[tuple[str, bool]]:
    """(path, is a directory) of each entry of a layer tar in the content store."""
    path = os.path.join(daemon.data_root, "content", "blobs", "sha256", digest.split(":")[1])
    out = []
    with tarfile.open(path, "r:*") as tf:
        for member in tf.getmembers():
            name = os.path.normpath(member.name).lstrip("/")
            if name != ".":
                out.append((name, member.isdir()))
    return out


def test_image_layers_and_what_each_adds(daemon, tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN rm /bin/true && touch /newfile && "
                                         "echo x >> /etc/os-release\nENV A=1\n")
    daemon.docker("build", "-q", "-t", "changed", str(tmp_path))
    answer = explain(daemon, "changed")
    assert set(answer) == IMAGE_KEYS and answer["kind"] == "image"
    inspect = json.loads(daemon.docker("image", "inspect", "changed").stdout)[0]
    assert answer["id"] == inspect["Id"] and [la["diff_id"] for la in answer["layers"]] == inspect["RootFS"]["Layers"]
    history = json.loads(daemon.docker("history", "--no-trunc", "--format", "{{json .}}", "changed").stdout
                         .splitlines()[0])
    assert "ENV A=1" in history["CreatedBy"] and answer["empty_steps"]
    top = answer["layers"][-1]
    assert "rm /bin/true" in top["created_by"]
    # Against the layer tars themselves: files below, and the top layer's own entries.
    below = {name for layer in answer["layers"][:-1] for name, _ in _layer_entries(daemon, layer["digest"])}
    entries = [(n, d) for n, d in _layer_entries(daemon, top["digest"])]
    whiteouts = [n for n, _ in entries if os.path.basename(n).startswith(".wh.")]
    files = [n for n, d in entries if not d and n not in whiteouts]
    assert top["changes"]["deleted"] == len(whiteouts) == 1
    assert top["changes"]["changed"] == len([n for n in files if n in below]) >= 1
    assert top["changes"]["added"] == len([n for n in files if n not in below]) + \
        len([n for n, d in entries if d and n not in below])
    base = answer["layers"][0]
    assert base["changes"] == {"added": len({n for n, _ in _layer_entries(daemon, base["digest"])}), "changed": 0,
                               "deleted": 0, "source": "snapshot"}
    text = orlop(daemon, "explain", "changed").stdout
    assert "ADDED" in text and "rm /bin/true" in text


# -- the CLI's text and JSON ---------------------------------------------------------------------

def test_text_is_aligned_without_escape_codes_off_a_terminal(daemon, default_container):
    text = orlop(daemon, "explain", "plain").stdout
    assert "\x1b" not in text
    for title in ("PROCESS", "NAMESPACES", "ROOT FILESYSTEM", "CGROUP", "SECURITY", "NETWORK"):
        assert any(line.startswith(title) for line in text.splitlines()), title
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("NAMESPACES"))
    table = lines[start + 1:start + 2 + len(KINDS)]
    assert table[0].split() == ["TYPE", "HOST", "CONTAINER"]
    columns = {line.index(line.split()[1], len(line.split()[0])) for line in table}
    assert len(columns) == 1  # the HOST column starts at the same offset on every row
    pid_inside = next(line for line in lines if line.strip().startswith("PID inside"))
    assert pid_inside.split()[-1] == "1"


def test_colour_on_a_terminal_unless_no_color(daemon, default_container):
    def on_a_pty(env: dict) -> str:
        controller, terminal = pty.openpty()
        proc = subprocess.Popen([ORLOP, "explain", "plain"], stdout=terminal, stderr=terminal,
                                stdin=subprocess.DEVNULL, env={**os.environ, "ORLOP_HOST": daemon.host, **env})
        os.close(terminal)
        out = b""
        while True:
            ready, _, _ = select.select([controller], [], [], 30)
            if not ready:
                break
            try:
                data = os.read(controller, 65536)
            except OSError:
                break
            if not data:
                break
            out += data
        proc.wait(30)
        os.close(controller)
        return out.decode(errors="replace")

    environment = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    os.environ.pop("NO_COLOR", None)
    try:
        assert "\x1b[" in on_a_pty({})
        assert "\x1b[" not in on_a_pty({"NO_COLOR": "1"})
    finally:
        os.environ.clear()
        os.environ.update(environment)


def test_json_keys_are_stable(daemon, default_container):
    answer = default_container[2]
    assert set(answer) == CONTAINER_KEYS and answer["version"] == 1 and answer["kind"] == "container"
    assert set(answer["process"]) == {"host_pid", "pid", "nspid", "shim", "runtime_state", "tree"}
    assert set(answer["namespaces"]) == {"reference", "path", "list"}
    assert set(answer["namespaces"]["list"][0]) == {"type", "container", "host", "new"}
    assert set(answer["cgroup"]) == {"mode", "version", "paths", "unified", "relative", "limits", "usage"}
    assert set(answer["cgroup"]["limits"]) == {"memory", "memory_effective", "memory_swap", "memory_reservation",
                                               "cpu_quota_us", "cpu_period_us", "cpu_shares", "cpu_weight", "cpus",
                                               "cpuset_cpus", "pids"}
    assert set(answer["cgroup"]["usage"]) == {"memory", "memory_peak", "cpu_ns", "pids", "oom_kills"}
    assert set(answer["rootfs"]) == {"driver", "path", "readonly", "upper_dir", "work_dir", "layers", "mounts",
                                     "shared_mounts", "masked_paths", "readonly_paths"}
    assert set(answer["network"]) == {"mode", "namespace_new", "interfaces", "error", "ports", "networks"}


def test_the_api_route_and_unknown_names(daemon, default_container):
    api = daemon.client().api
    answer = api._result(api._get(api._url("/containers/{0}/explain", "plain")), json=True)
    assert answer["id"] == default_container[0]
    image = api._result(api._get(api._url("/images/{0}/explain", "busybox")), json=True)
    assert image["kind"] == "image"
    response = api._get(api._url("/containers/{0}/explain", "nosuch"))
    assert response.status_code == 404 and "No such container" in response.json()["message"]
    done = orlop(daemon, "explain", "nosuch", check=False)
    assert done.returncode == 1 and "No such container or image: nosuch" in done.stderr
    assert orlop(daemon, "explain", "--type", "image", "busybox").stdout.startswith("IMAGE")


@pytest.mark.skipif(not shutil.which("runc"), reason="runc is not installed")
def test_runc_state_file_is_found_and_read(daemon):
    """Under runc the state file is runc's own: the same keys, in the daemon's root for runc."""
    cid, pid = run(daemon, "--runtime", "runc", "busybox", "sleep", "1000")
    state = explain(daemon, cid)["process"]["runtime_state"]
    assert state["path"] == os.path.join(daemon.exec_root, "runtime", "runc", cid, "state.json")
    with open(state["path"]) as f:
        assert json.load(f)["init_process_pid"] == pid == state["init_process_pid"]
    assert state["namespace_paths"]["NEWPID"] == f"/proc/{pid}/ns/pid"
