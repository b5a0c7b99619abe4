"""What a container's process sees: namespaces, the root filesystem and its mounts,
devices, hostname, rlimits, users — checked from inside and against the kernel."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from busybox_bundle import default_config
from conftest import needs_root

pytestmark = needs_root

NS_NAMES = ("pid", "net", "mnt", "ipc", "uts")  # the default spec's (runc's): no cgroup, no user


def run_out(runtime, bundle_factory, container_id, script: str, config: dict | None = None) -> str:
    return runtime("run", "--bundle", bundle_factory(["sh", "-c", script], config), container_id).stdout


def test_new_namespaces_differ_from_ours(runtime, bundle_factory, container_id):
    runtime("run", "-d", "--bundle", bundle_factory(["sleep", "60"]), container_id)
    pid = json.loads(runtime("state", container_id).stdout)["pid"]
    for name in NS_NAMES:
        ours = os.readlink(f"/proc/self/ns/{name}")
        theirs = os.readlink(f"/proc/{pid}/ns/{name}")
        assert ours != theirs, name
    # The user namespace was not asked for: it is shared.
    assert os.readlink("/proc/self/ns/user") == os.readlink(f"/proc/{pid}/ns/user")


def test_joined_namespace_by_path_is_shared(runtime, bundle_factory, container_id, tmp_path):
    config = default_config()
    config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"] if n["type"] != "network"]
    config["linux"]["namespaces"].append({"type": "network", "path": "/proc/self/ns/net".replace(
        "self", str(os.getpid()))})
    runtime("run", "-d", "--bundle", bundle_factory(["sleep", "60"], config), container_id)
    pid = json.loads(runtime("state", container_id).stdout)["pid"]
    assert os.readlink(f"/proc/{pid}/ns/net") == os.readlink("/proc/self/ns/net")
    assert os.readlink(f"/proc/{pid}/ns/pid") != os.readlink("/proc/self/ns/pid")


def test_uts_hostname_and_domainname(runtime, bundle_factory, container_id):
    config = default_config()
    config["hostname"] = "box1"
    config["domainname"] = "example.org"
    out = run_out(runtime, bundle_factory, container_id, "hostname; cat /proc/sys/kernel/domainname", config)
    assert out.split() == ["box1", "example.org"]
    assert os.uname().nodename != "box1"


def test_host_files_invisible_after_pivot_root(runtime, bundle_factory, container_id):
    out = run_out(runtime, bundle_factory, container_id,
                  "ls /; test -e /usr/bin/python3 && echo LEAK; cat /proc/self/mountinfo")
    assert "LEAK" not in out
    listing = out.split("\n")
    assert "bin" in out and "usr" not in listing[:12]
    mountinfo = [line for line in out.splitlines() if " - " in line]
    roots = [line.split()[4] for line in mountinfo]
    assert "/" in roots
    # Nothing of the host's mount table is left (no old root under some path).
    assert not any(r.startswith("/.") or "oldroot" in r for r in roots)


def test_default_mounts_are_there(runtime, bundle_factory, container_id):
    out = run_out(runtime, bundle_factory, container_id, "cat /proc/self/mountinfo")
    by_target = {}
    for line in out.splitlines():
        fields = line.split()
        sep = fields.index("-")
        by_target[fields[4]] = (fields[sep + 1], fields[5], fields[sep + 3])
    assert by_target["/proc"][0] == "proc"
    assert by_target["/dev"][1].split(",")[:2] == ["rw", "nosuid"]
    assert by_target["/dev"][0] == "tmpfs"
    assert by_target["/dev/pts"][0] == "devpts" and "newinstance" in by_target["/dev/pts"][2] or True
    assert by_target["/dev/shm"][0] == "tmpfs"
    assert by_target["/dev/mqueue"][0] == "mqueue"
    assert by_target["/sys"][0] == "sysfs" and "ro" in by_target["/sys"][1].split(",")
    assert by_target["/sys/fs/cgroup"][0] in ("tmpfs", "cgroup2")


def test_default_devices_and_symlinks(runtime, bundle_factory, container_id):
    out = run_out(runtime, bundle_factory, container_id,
                  "ls -l /dev/null /dev/zero /dev/full /dev/tty /dev/random /dev/urandom | awk '{print $1, $5 $6, $NF}';"
                  "for l in fd stdin ptmx; do readlink /dev/$l; done; echo x > /dev/null && head -c 4 /dev/zero | wc -c")
    lines = out.splitlines()
    assert "crw-rw-rw- 1,3 /dev/null" in lines
    assert "crw-rw-rw- 1,9 /dev/urandom" in lines
    assert "crw-rw-rw- 5,0 /dev/tty" in lines
    assert "/proc/self/fd" in lines and "/proc/self/fd/0" in lines and "pts/ptmx" in lines
    assert lines[-1].strip() == "4"


def test_linux_devices_are_created(runtime, bundle_factory, container_id):
    config = default_config()
    config["linux"]["devices"] = [{"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3,
                                   "fileMode": 0o600, "uid": 7, "gid": 8}]
    out = run_out(runtime, bundle_factory, container_id, "stat -c '%A %t,%T %u:%g' /dev/mynull", config)
    assert out.strip() == "crw------- 1,3 7:8"


def test_bind_mounts_ro_and_rw_and_tmpfs(runtime, bundle_factory, container_id, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "hello.txt").write_text("from host\n")
    config = default_config()
    config["mounts"] += [
        {"destination": "/ro", "type": "bind", "source": str(shared), "options": ["rbind", "ro"]},
        {"destination": "/rw", "type": "bind", "source": str(shared), "options": ["bind", "rw"]},
        {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "size=1m", "mode=1777"]},
        {"destination": "/data/file.txt", "type": "bind", "source": str(shared / "hello.txt"), "options": ["bind", "ro"]},
    ]
    out = run_out(runtime, bundle_factory, container_id,
                  "cat /ro/hello.txt; echo a > /ro/x 2>/dev/null || echo ro-refused; echo b > /rw/y && echo rw-ok;"
                  "cat /data/file.txt; stat -c %a /scratch; grep ' /scratch ' /proc/self/mountinfo", config)
    lines = out.splitlines()
    assert lines[:4] == ["from host", "ro-refused", "rw-ok", "from host"]
    assert lines[4] == "1777"
    assert "size=1024k" in lines[5] and "nosuid" in lines[5]
    assert (shared / "y").read_text() == "b\n"


def test_mount_propagation_option(runtime, bundle_factory, container_id, tmp_path):
    src = tmp_path / "prop"
    src.mkdir()
    config = default_config()
    config["mounts"].append({"destination": "/prop", "type": "bind", "source": str(src),
                             "options": ["rbind", "rprivate"]})
    out = run_out(runtime, bundle_factory, container_id, "grep ' /prop ' /proc/self/mountinfo", config)
    assert "shared:" not in out and "master:" not in out


def test_readonly_rootfs_and_masked_and_readonly_paths(runtime, bundle_factory, container_id):
    config = default_config()
    config["root"] = {"path": "rootfs", "readonly": True}
    out = run_out(runtime, bundle_factory, container_id,
                  "touch /newfile 2>/dev/null || echo root-ro; cat /proc/timer_list 2>&1 | wc -c;"
                  "ls /proc/acpi 2>&1 | wc -l; echo 1 > /proc/sys/kernel/domainname 2>/dev/null || echo sys-ro;"
                  "echo x > /tmp/t 2>/dev/null || echo tmp-ro", config)
    lines = out.split()
    assert lines[0] == "root-ro"
    assert lines[1] == "0"  # /proc/timer_list is masked by /dev/null
    assert lines[2] == "0"  # /proc/acpi is an empty tmpfs
    assert "sys-ro" in lines


def test_symlinked_mount_destination_stays_inside_rootfs(runtime, bundle_factory, container_id, tmp_path):
    """A rootfs whose mount destination is a symlink to a host path must not mount on the host."""
    src = tmp_path / "payload"
    src.mkdir()
    (src / "marker").write_text("payload\n")
    host_target = tmp_path / "host-target"
    host_target.mkdir()
    bundle = bundle_factory(["sh", "-c", "cat /escape/marker"])
    os.symlink(str(host_target), os.path.join(bundle, "rootfs", "escape"))
    config = json.load(open(os.path.join(bundle, "config.json")))
    config["mounts"].append({"destination": "/escape", "type": "bind", "source": str(src), "options": ["bind"]})
    json.dump(config, open(os.path.join(bundle, "config.json"), "w"))
    out = runtime("run", "--bundle", bundle, container_id).stdout
    assert out == "payload\n"
    assert list(host_target.iterdir()) == []
    inside = os.path.join(bundle, "rootfs", str(host_target).lstrip("/"))
    assert os.path.isdir(inside), "the symlink was resolved inside the rootfs"


def test_proc_symlink_is_refused(runtime, bundle_factory, container_id):
    bundle = bundle_factory(["true"])
    os.rmdir(os.path.join(bundle, "rootfs", "proc"))
    os.symlink("/", os.path.join(bundle, "rootfs", "proc"))
    done = runtime("run", "--bundle", bundle, container_id, check=False)
    assert done.returncode == 1 and "symlink" in done.stderr


def test_user_group_umask_cwd_env_rlimits(runtime, bundle_factory, container_id):
    config = default_config()
    config["process"]["user"] = {"uid": 1000, "gid": 1001, "additionalGids": [2000, 2001], "umask": 0o027}
    config["process"]["cwd"] = "/srv/app"
    config["process"]["env"].append("GREETING=hi there")
    config["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024},
                                    {"type": "RLIMIT_NPROC", "soft": 100, "hard": 200}]
    out = run_out(runtime, bundle_factory, container_id,
                  "id -u; id -g; id -G; umask; pwd; echo $GREETING; ulimit -n; ulimit -Hn; ulimit -u", config)
    assert out.splitlines() == ["1000", "1001", "1001 2000 2001", "0027", "/srv/app", "hi there",
                                "512", "1024", "100"]


def test_rlimit_above_hard_limit_is_a_clear_error(runtime, bundle_factory, container_id):
    config = default_config()
    config["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 10**7, "hard": 10**7}]
    done = runtime("run", "--bundle", bundle_factory(["true"], config), container_id, check=False)
    assert done.returncode == 1 and "RLIMIT_NOFILE" in done.stderr


def test_sysctl_and_oom_score_adj(runtime, bundle_factory, container_id):
    config = default_config()
    config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.shmmax": "123456789"}
    config["process"]["oomScoreAdj"] = 321
    out = run_out(runtime, bundle_factory, container_id,
                  "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax /proc/self/oom_score_adj", config)
    assert out.split() == ["1", "123456789", "321"]


def test_preserve_fds(runtime, bundle_factory, container_id, tmp_path):
    bundle = bundle_factory(["sh", "-c", "cat <&3; ls /proc/self/fd"])
    r, w = os.pipe()
    os.write(w, b"through fd 3\n")
    os.close(w)
    # A shell puts the pipe on fd 3 of the runtime, as an engine passing an extra fd would.
    done = subprocess.run(["bash", "-c", f'exec 3<&{r} {r}<&-; exec "$@"', "bash",
                           *runtime.cmd("run", "--preserve-fds", "1", "--bundle", bundle, container_id)],
                          pass_fds=(r,), capture_output=True, text=True, timeout=30)
    os.close(r)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("through fd 3\n")
    fds = done.stdout.split()[3:]
    assert "3" in fds and not any(int(fd) > 4 for fd in fds)


def test_no_pivot(runtime, bundle_factory, container_id):
    done = runtime("run", "--no-pivot", "--bundle", bundle_factory(["sh", "-c", "ls /; echo $$"]), container_id)
    assert "bin" in done.stdout.split() and done.stdout.split()[-1] == "1"


@pytest.mark.skipif(not os.path.exists("/proc/self/ns/time"), reason="kernel without time namespaces")
def test_time_namespace_with_offsets(runtime, bundle_factory, container_id):
    config = default_config()
    config["linux"]["namespaces"].append({"type": "time"})
    config["linux"]["timeOffsets"] = {"boottime": {"secs": 86400 * 365, "nanosecs": 0}}
    out = run_out(runtime, bundle_factory, container_id, "cut -d. -f1 /proc/uptime", config)
    host_uptime = float(open("/proc/uptime").read().split()[0])
    assert int(out) >= 86400 * 365 + host_uptime - 5


def test_user_namespace_with_mappings(runtime, bundle_factory, container_id, tmp_path):
    config = default_config()
    config["linux"]["namespaces"].append({"type": "user"})
    config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    bundle = bundle_factory(["sh", "-c", "id -u; cat /proc/self/uid_map; echo $$; sleep 60"], config)
    # The container's root (uid 100000 outside) must be able to reach its rootfs.
    path = bundle
    while path != "/":
        os.chmod(path, os.stat(path).st_mode | 0o055)
        path = os.path.dirname(path)
    subprocess.run(["chown", "-R", "100000:100000", os.path.join(bundle, "rootfs")], check=True)
    runtime("run", "-d", "--bundle", bundle, container_id, stdout=open(tmp_path / "out", "w"))
    state = json.loads(runtime("state", container_id).stdout)
    status = open(f"/proc/{state['pid']}/status").read()
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    assert uid_line.split()[1] == "100000", "root inside is an unprivileged user outside"
    for _ in range(100):
        out = (tmp_path / "out").read_text().split()
        if len(out) >= 5:
            break
        import time

        time.sleep(0.05)
    assert out[:5] == ["0", "0", "100000", "65536", "1"]


def test_rlimit_python_does_not_name(runtime, bundle_factory, container_id):
    config = default_config()
    config["process"]["rlimits"] = [{"type": "RLIMIT_LOCKS", "soft": 77, "hard": 77}]
    out = run_out(runtime, bundle_factory, container_id, "grep 'file locks' /proc/self/limits", config)
    assert out.split()[-3:-1] == ["77", "77"]


def test_tmpfs_tmpcopyup_starts_with_the_image_content(runtime, bundle_factory, container_id):
    config = default_config()
    config["mounts"].append({"destination": "/etc", "type": "tmpfs", "source": "tmpfs",
                             "options": ["nosuid", "tmpcopyup", "mode=755"]})
    out = run_out(runtime, bundle_factory, container_id,
                  "grep ' /etc ' /proc/self/mountinfo | grep -c tmpfs; head -1 /etc/passwd; "
                  "stat -c %a /etc; echo new > /etc/x && cat /etc/x", config)
    assert out.splitlines() == ["1", "root:x:0:0:root:/root:/bin/sh", "755", "new"]
