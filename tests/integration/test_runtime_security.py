"""Capabilities, no_new_privs, user namespaces and hostile bundles, checked from
inside the container (/proc/self/status, the syscall probe) and on the host."""

from __future__ import annotations

import json
import os

import pytest
from busybox_bundle import default_config
from conftest import needs_root

from orlop.linux.caps import CAP_NAMES, parse_caps

pytestmark = needs_root


def status_fields(text: str) -> dict[str, str]:
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


@pytest.mark.parametrize("uid", [0, 1000])
def test_capability_sets_match_the_config(runtime, bundle_factory, container_id, uid):
    config = default_config()
    config["process"]["user"] = {"uid": uid, "gid": uid}
    config["process"]["capabilities"] = {
        "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETUID"],
        "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "effective": ["CAP_CHOWN", "CAP_KILL"],
        "inheritable": ["CAP_NET_BIND_SERVICE", "CAP_KILL"],
        "ambient": ["CAP_NET_BIND_SERVICE"],
    }
    out = runtime("run", "--bundle", bundle_factory(["cat", "/proc/self/status"], config), container_id).stdout
    fields = status_fields(out)
    # `cat` was exec'd: for a non-root user, effective = permitted = ambient after execve.
    expected = {
        "CapBnd": parse_caps(config["process"]["capabilities"]["bounding"]),
        "CapInh": parse_caps(["CAP_NET_BIND_SERVICE", "CAP_KILL"]),
        "CapAmb": parse_caps(["CAP_NET_BIND_SERVICE"]),
    }
    if uid == 0:  # root keeps the permitted set through execve (no file caps on cat)
        expected["CapPrm"] = parse_caps(["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"])
        expected["CapEff"] = expected["CapPrm"]
    else:
        expected["CapPrm"] = expected["CapEff"] = parse_caps(["CAP_NET_BIND_SERVICE"])
    for key, value in expected.items():
        assert int(fields[key], 16) == value, (key, fields[key])
    assert fields["NoNewPrivs"].strip() == "1"


def test_dropped_chown_capability_makes_chown_fail(runtime, bundle_factory, container_id):
    config = default_config()
    config["root"]["readonly"] = False
    config["process"]["capabilities"] = {k: ["CAP_KILL"] for k in ("bounding", "effective", "permitted")}
    out = runtime("run", "--bundle", bundle_factory(["probe", "chown"], config), container_id).stdout
    assert out.strip() == "chown errno=1"
    config["process"]["capabilities"] = {k: ["CAP_CHOWN"] for k in ("bounding", "effective", "permitted")}
    runtime("delete", "--force", container_id)
    out = runtime("run", "--bundle", bundle_factory(["probe", "chown"], config), container_id).stdout
    assert out.strip() == "chown ok"


def test_unknown_capability_is_a_clear_error(runtime, bundle_factory, container_id):
    config = default_config()
    config["process"]["capabilities"]["bounding"].append("CAP_FLY")
    done = runtime("create", "--bundle", bundle_factory(["true"], config), container_id, check=False)
    assert done.returncode == 1
    assert "process.capabilities.bounding[3]" in done.stderr and "CAP_FLY" in done.stderr
    assert not os.path.exists(os.path.join(runtime.root, container_id))


def test_no_new_privileges_off(runtime, bundle_factory, container_id):
    config = default_config()
    config["process"]["noNewPrivileges"] = False
    out = runtime("run", "--bundle", bundle_factory(["grep", "NoNewPrivs", "/proc/self/status"], config),
                  container_id).stdout
    assert out.split() == ["NoNewPrivs:", "0"]


def test_all_host_capabilities_for_a_privileged_container(runtime, bundle_factory, container_id):
    host_bounding = int(status_fields(open("/proc/self/status").read())["CapBnd"], 16)
    names = [name for name, bit in CAP_NAMES.items() if host_bounding >> bit & 1]
    config = default_config()
    config["process"]["capabilities"] = {k: names for k in ("bounding", "effective", "permitted")}
    out = runtime("run", "--bundle", bundle_factory(["cat", "/proc/self/status"], config), container_id).stdout
    assert int(status_fields(out)["CapEff"], 16) == host_bounding


def test_device_node_through_symlinked_dev_stays_inside(runtime, bundle_factory, container_id, tmp_path):
    """A rootfs whose /dev is a symlink to a host path, and no /dev mount: device nodes
    must be created inside the rootfs, never on the host."""
    host_dir = tmp_path / "host-dev"
    host_dir.mkdir()
    config = default_config()
    config["mounts"] = [m for m in config["mounts"] if not m["destination"].startswith("/dev")]
    bundle = bundle_factory(["true"], config)
    rootfs = os.path.join(bundle, "rootfs")
    os.rmdir(os.path.join(rootfs, "dev"))
    os.symlink(str(host_dir), os.path.join(rootfs, "dev"))
    runtime("run", "--bundle", bundle, container_id)
    assert list(host_dir.iterdir()) == []
    inside = os.path.join(rootfs, str(host_dir).lstrip("/"))
    assert os.path.exists(os.path.join(inside, "null"))


def test_user_namespace_root_is_unprivileged_outside(runtime, bundle_factory, container_id, tmp_path):
    config = default_config()
    config["linux"]["namespaces"].append({"type": "user"})
    config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 1000}]
    config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 1000}]
    config["root"]["readonly"] = False
    config["process"]["capabilities"] = {k: ["CAP_CHOWN"] for k in ("bounding", "effective", "permitted")}
    bundle = bundle_factory(["sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; stat -c %u:%g /bin/busybox; "
                             "probe chown"], config)
    path = bundle
    while path != "/":
        os.chmod(path, os.stat(path).st_mode | 0o055)
        path = os.path.dirname(path)
    os.chown(os.path.join(bundle, "rootfs"), 200000, 200000)  # / owned by the container's root
    out = runtime("run", "--bundle", bundle, container_id).stdout.splitlines()
    assert [line.split() for line in out[:2]] == [["0", "200000", "1000"], ["0", "200000", "1000"]]
    assert out[2] == "65534:65534", "files of unmapped host users show as nobody inside"
    assert out[3] == "chown ok", "root in its own user namespace may chown what it owns"


def test_state_json_of_a_user_namespace_container(runtime, bundle_factory, container_id):
    config = default_config()
    config["linux"]["namespaces"].append({"type": "user"})
    config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 0, "size": 1}]
    config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 0, "size": 1}]
    for mount in config["mounts"]:
        if mount["destination"] == "/dev/pts":
            mount["options"].remove("gid=5")  # gid 5 is not mapped
    runtime("create", "--bundle", bundle_factory(["true"], config), container_id)
    raw = json.load(open(os.path.join(runtime.root, container_id, "state.json")))
    pid = raw["init_process_pid"]
    assert raw["namespace_paths"]["NEWUSER"] == f"/proc/{pid}/ns/user"
    assert os.readlink(f"/proc/{pid}/ns/user") != os.readlink("/proc/self/ns/user")


def test_rootless_container_as_an_unprivileged_user(tmp_path_factory, rootfs_template):
    """`spec --rootless` as user nobody: a user namespace mapping only that user, no cgroup."""
    import subprocess
    import tempfile

    from conftest import ORLOP_RUNTIME

    base = tempfile.mkdtemp(prefix="orlop-rootless-", dir="/tmp")
    try:
        os.chmod(base, 0o755)
        bundle = os.path.join(base, "bundle")
        os.mkdir(bundle)
        subprocess.run(["cp", "-a", rootfs_template, os.path.join(bundle, "rootfs")], check=True)
        subprocess.run(["chown", "-R", "65534:65534", base], check=True)
        as_nobody = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
                     "env", f"XDG_RUNTIME_DIR={base}/run", ORLOP_RUNTIME]
        subprocess.run([*as_nobody, "spec", "--rootless", "--bundle", bundle], check=True)
        config = json.load(open(os.path.join(bundle, "config.json")))
        assert config["linux"]["uidMappings"] == [{"containerID": 0, "hostID": 65534, "size": 1}]
        config["process"]["terminal"] = False
        config["process"]["args"] = ["sh", "-c", "id -u; cat /proc/self/uid_map /proc/self/setgroups; echo $$"]
        json.dump(config, open(os.path.join(bundle, "config.json"), "w"))
        done = subprocess.run([*as_nobody, "run", "--bundle", bundle, "rootless1"], capture_output=True, text=True,
                              timeout=30)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["0", "0", "65534", "1", "deny", "1"]
        assert not os.path.exists(f"{base}/run/orlop-runtime/rootless1"), "run deletes the container"
    finally:
        subprocess.run(["rm", "-rf", base])


def test_apparmor_profile_without_apparmor_is_refused(runtime, bundle_factory, container_id):
    from orlop.runtime.process import apparmor_enabled

    if apparmor_enabled():
        pytest.skip("AppArmor is enabled here: the profile would be applied")
    config = default_config()
    config["process"]["apparmorProfile"] = "docker-default"
    done = runtime("create", "--bundle", bundle_factory(["true"], config), container_id, check=False)
    assert done.returncode == 1
    assert "apparmorProfile" in done.stderr and "not enabled" in done.stderr
    assert not os.path.exists(os.path.join(runtime.root, container_id))


def test_selinux_label_without_selinux_is_ignored(runtime, bundle_factory, container_id):
    from orlop.runtime.process import selinux_enabled

    if selinux_enabled():
        pytest.skip("SELinux is enabled here: the label would be applied")
    config = default_config()
    config["process"]["selinuxLabel"] = "system_u:system_r:container_t:s0:c1,c2"
    assert runtime("run", "--bundle", bundle_factory(["echo", "ran"], config), container_id).stdout == "ran\n"
