"""config.json validation (errors name the JSON path of the wrong field), mount option
parsing, `spec` and `features` output, checked against runc where it is installed."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
from seccomp_profiles import DOCKER_PROFILE, docker_default_profile

from orlop.oci import runtime_spec as rs
from orlop.oci.default_spec import default_spec
from orlop.oci.features import features
from orlop.oci.runtime_spec import ConfigError, parse_mount_attrs, parse_mount_options, validate

RUNC = shutil.which("runc")
needs_runc = pytest.mark.skipif(RUNC is None, reason="runc is not installed")


@pytest.fixture
def bundle(tmp_path):
    (tmp_path / "rootfs").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "config.json").write_text("{}")
    return str(tmp_path)


def full_spec() -> dict:
    """A config using every part validate() knows, each with a valid value."""
    spec = default_spec()
    spec["ociVersion"] = "1.2.0"
    process = spec["process"]
    process.update(user={"uid": 1000, "gid": 1000, "additionalGids": [10, 20], "umask": 0o022},
                   consoleSize={"height": 24, "width": 80}, oomScoreAdj=-500, apparmorProfile="",
                   selinuxLabel="", scheduler={"policy": "SCHED_FIFO", "priority": 10, "flags": []},
                   ioPriority={"class": "IOPRIO_CLASS_BE", "priority": 4},
                   execCPUAffinity={"initial": "0", "final": "0-1"})
    process["capabilities"]["inheritable"] = ["CAP_CHOWN"]
    process["rlimits"].append({"type": "RLIMIT_LOCKS", "soft": 0, "hard": 2**64 - 1})
    spec["domainname"] = "example.org"
    spec["mounts"] += [{"destination": "/data", "type": "none", "source": "data", "options": ["rbind", "rro", "rprivate"]},
                       {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup", "mode=1777"]}]
    linux = spec["linux"]
    linux["namespaces"] += [{"type": "cgroup"}, {"type": "time"}, {"type": "user", "path": "/proc/self/ns/user"}]
    linux["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o20666,
                         "uid": 0, "gid": 0}, {"path": "/dev/pipe", "type": "p"}]
    linux["resources"] = {
        "devices": [{"allow": False, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 10, "minor": -1, "access": "rw"}],
        "memory": {"limit": 2**30, "reservation": 2**29, "swap": 2**31, "swappiness": 10, "disableOOMKiller": False},
        "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0-1,3", "mems": "0", "idle": 0},
        "pids": {"limit": 100},
        "blockIO": {"weight": 500, "weightDevice": [{"major": 8, "minor": 0, "weight": 300}],
                    "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 10**6}]},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 0}],
        "network": {"classID": 1, "priorities": [{"name": "eth0", "priority": 1}]},
        "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10}},
        "unified": {"memory.high": "max"},
    }
    linux["cgroupsPath"] = "/orlop/test"
    linux["sysctl"] = {"net.ipv4.ip_forward": "1", "net/ipv4/conf/eth0.100/rp_filter": "0", "kernel.shmmax": "65536",
                       "fs.mqueue.msg_max": "10", "kernel.domainname": "example.org"}
    linux["rootfsPropagation"] = "rslave"
    linux["seccomp"] = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1, "architectures": ["SCMP_ARCH_X86_64"],
                        "flags": ["SECCOMP_FILTER_FLAG_SPEC_ALLOW"], "listenerPath": "/run/notify.sock",
                        "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                                     {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"},
                                     {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                                      "args": [{"index": 0, "value": 0, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]}]}
    linux["personality"] = {"domain": "LINUX"}
    linux["timeOffsets"] = {"monotonic": {"secs": 10, "nanosecs": 5}, "boottime": {"secs": -10}}
    spec["hooks"] = {kind: [{"path": "/bin/true", "args": ["true"], "env": ["A=1"], "timeout": 5}]
                     for kind in rs.HOOK_KINDS}
    spec["annotations"] = {"com.example.key": "value", "org.opencontainers.image.os": "linux"}
    return spec


# -- a valid config passes -------------------------------------------------------------------------

@pytest.mark.parametrize("rootless", [False, True])
def test_default_spec_round_trips_through_validate(bundle, rootless):
    validate(json.loads(json.dumps(default_spec(rootless))), bundle)


def test_full_spec_passes(bundle):
    validate(full_spec(), bundle)


def test_absolute_rootfs_and_relative_mount_destination_pass(bundle):
    spec = default_spec()
    spec["root"]["path"] = os.path.join(bundle, "rootfs")
    spec["mounts"].append({"destination": "data", "type": "tmpfs", "source": "tmpfs"})  # runc: relative to /
    validate(spec, bundle)


@pytest.mark.parametrize("version", ["1.0.0", "1.0.2-dev", "1.1.0+dev", "1.2.1", "1.0.0-rc5"])
def test_versions_1_0_to_1_2_pass(bundle, version):
    spec = default_spec()
    spec["ociVersion"] = version
    validate(spec, bundle)


def test_unknown_properties_are_ignored_at_every_level(bundle):
    spec = full_spec()
    for part in (spec, spec["process"], spec["process"]["user"], spec["linux"], spec["linux"]["resources"],
                 spec["linux"]["resources"]["memory"], spec["mounts"][0], spec["linux"]["seccomp"],
                 spec["hooks"], spec["hooks"]["poststop"][0], spec["linux"]["namespaces"][0]):
        part["someFutureField"] = {"x": [1, 2]}
    spec["process"]["capabilities"]["someFutureSet"] = ["CAP_FOO"]
    validate(spec, bundle)


def test_null_is_absent_as_go_decodes_it(bundle):
    spec = default_spec()
    spec.update(mounts=None, hooks=None, annotations=None, hostname=None)
    spec["process"].update(env=None, capabilities=None, rlimits=None, user=None)
    spec["linux"].update(resources=None, seccomp=None, sysctl=None, maskedPaths=None)
    validate(spec, bundle)


def test_an_empty_seccomp_profile_means_none(bundle):
    spec = default_spec()
    spec["linux"]["seccomp"] = {"defaultAction": "", "syscalls": []}
    validate(spec, bundle)


@pytest.mark.skipif(not os.path.exists(DOCKER_PROFILE), reason="no copy of Docker's default profile")
def test_dockers_default_seccomp_profile_passes(bundle):
    spec = default_spec()
    spec["linux"]["seccomp"] = docker_default_profile()
    validate(spec, bundle)


# -- each class of error names its path --------------------------------------------------------------

DELETE = object()


def put(path: str, value):
    """A mutation setting (or deleting, with DELETE) the value at a path like linux.namespaces[2].type."""
    tokens = [int(t[1:-1]) if t.startswith("[") else t for t in re.findall(r"\[\d+\]|[^.\[\]]+", path)]

    def mutate(spec: dict) -> None:
        parent = spec
        for token in tokens[:-1]:
            parent = parent[token]
        if value is DELETE:
            del parent[tokens[-1]]
        else:
            parent[tokens[-1]] = copy.deepcopy(value)
    return mutate


def both(*mutations):
    def mutate(spec: dict) -> None:
        for m in mutations:
            m(spec)
    return mutate


def add_namespace(kind: str, **fields):
    return lambda spec: spec["linux"]["namespaces"].append({"type": kind, **fields})


def drop_namespace(kind: str):
    return lambda spec: spec["linux"].update(namespaces=[n for n in spec["linux"]["namespaces"] if n["type"] != kind])


def add_mount(**mount):
    return lambda spec: spec["mounts"].append(mount)


USERNS = both(add_namespace("user"), put("linux.uidMappings", [{"containerID": 0, "hostID": 100000, "size": 65536}]),
              put("linux.gidMappings", [{"containerID": 0, "hostID": 100000, "size": 65536}]))
SECCOMP = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}

ERRORS = [
    # ociVersion and root
    (put("ociVersion", DELETE), "ociVersion", "is required"),
    (put("ociVersion", 1.0), "ociVersion", "must be a string, got 1.0"),
    (put("ociVersion", "1.0"), "ociVersion", 'must be a SemVer version like "1.2.0", got "1.0"'),
    (put("ociVersion", "2.0.0"), "ociVersion", '"2.0.0" is not supported'),
    (put("ociVersion", "1.3.0"), "ociVersion", "runtime-spec 1.0.0 to 1.2.x"),
    (put("root", DELETE), "root", "is required"),
    (put("root.path", "missing"), "root.path", "rootfs "),
    (put("root.path", ""), "root.path", "must name the rootfs directory"),
    (put("root.path", "rootfs/../config.json"), "root.path", "is not a directory"),
    (put("root.readonly", "yes"), "root.readonly", 'must be true or false, got "yes"'),
    # process
    (put("process", DELETE), "process", "required to create a container"),
    (put("process", "sh"), "process", "must be an object"),
    (put("process.args", []), "process.args", "must be a non-empty list of strings"),
    (put("process.args", "sh"), "process.args", 'must be a list of strings, got "sh"'),
    (put("process.args", ["sh", 1]), "process.args[1]", "must be a string, got 1"),
    (put("process.args", [""]), "process.args[0]", "must name the program to run"),
    (put("process.args", ["sh\0x"]), "process.args[0]", "NUL"),
    (put("process.env", ["PATH=/bin", "FOO"]), "process.env[1]", 'must be KEY=VALUE, got "FOO"'),
    (put("process.env", ["=x"]), "process.env[0]", "must be KEY=VALUE"),
    (put("process.cwd", "tmp"), "process.cwd", "must be an absolute path"),
    (put("process.cwd", DELETE), "process.cwd", "is required"),
    (put("process.user.uid", -1), "process.user.uid", "must be between 0 and 4294967294, got -1"),
    (put("process.user.uid", "0"), "process.user.uid", 'must be an integer, got "0"'),
    (put("process.user.gid", True), "process.user.gid", "must be an integer, got true"),
    (put("process.user.gid", 1.5), "process.user.gid", "must be an integer, got 1.5"),
    (put("process.user.additionalGids", [5, "x"]), "process.user.additionalGids[1]", "must be an integer"),
    (put("process.user.umask", 0o1000), "process.user.umask", "between 0 and 511"),
    (put("process.terminal", "yes"), "process.terminal", "must be true or false"),
    (put("process.consoleSize", {"height": -1}), "process.consoleSize.height", "between 0 and 65535"),
    (put("process.rlimits[0].type", "RLIMIT_FOO"), "process.rlimits[0].type", 'unknown rlimit "RLIMIT_FOO"'),
    (lambda s: s["process"]["rlimits"].append(dict(s["process"]["rlimits"][0])), "process.rlimits[1].type",
     "RLIMIT_NOFILE is set twice"),
    (put("process.rlimits[0].soft", 2048), "process.rlimits[0]", "soft limit 2048 is above the hard limit 1024"),
    (put("process.rlimits[0].hard", DELETE), "process.rlimits[0].hard", "is required"),
    (put("process.rlimits[0].hard", 2**64), "process.rlimits[0].hard", "between 0 and 18446744073709551615"),
    (put("process.oomScoreAdj", 1001), "process.oomScoreAdj", "between -1000 and 1000"),
    (put("process.capabilities.bounding[1]", "CAP_FOO"), "process.capabilities.bounding[1]",
     'unknown capability "CAP_FOO"'),
    (put("process.capabilities.ambient[0]", "net_admin"), "process.capabilities.ambient[0]",
     'did you mean "CAP_NET_ADMIN"?'),
    (put("process.capabilities.effective", "CAP_KILL"), "process.capabilities.effective", "must be a list"),
    (put("process.noNewPrivileges", "true"), "process.noNewPrivileges", "must be true or false"),
    (put("process.apparmorProfile", 1), "process.apparmorProfile", "must be a string"),
    (put("process.scheduler", {"policy": "SCHED_FAST"}), "process.scheduler.policy", 'unknown value "SCHED_FAST"'),
    (put("process.scheduler", {"policy": "SCHED_OTHER", "priority": 5}), "process.scheduler.priority",
     "only for the SCHED_FIFO and SCHED_RR"),
    (put("process.ioPriority", {"class": "IOPRIO_CLASS_BE", "priority": 8}), "process.ioPriority.priority",
     "between 0 and 7"),
    (put("process.execCPUAffinity", {"final": "1-0"}), "process.execCPUAffinity.final", 'like "0-2,4"'),
    # hostname, domainname
    (drop_namespace("uts"), "hostname", "cannot be set without a uts namespace"),
    (both(drop_namespace("uts"), put("hostname", ""), put("domainname", "x")), "domainname", "uts namespace"),
    (put("hostname", "h" * 65), "hostname", "at most 64 bytes"),
    (put("hostname", 7), "hostname", "must be a string"),
    # namespaces
    (put("linux.namespaces[2].type", "foo"), "linux.namespaces[2].type",
     'unknown namespace type "foo" (expected one of cgroup, ipc, mount, network, pid, time, user, uts)'),
    (add_namespace("pid"), "linux.namespaces[5].type", "the pid namespace is listed twice"),
    (put("linux.namespaces[0]", "pid"), "linux.namespaces[0]", "must be an object"),
    (put("linux.namespaces", {"pid": {}}), "linux.namespaces", "must be a list"),
    (put("linux.namespaces[1].path", "proc/1/ns/net"), "linux.namespaces[1].path", "must be an absolute path"),
    (put("linux.namespaces[1].path", "/no/such/netns"), "linux.namespaces[1].path",
     "/no/such/netns does not exist (the namespace to join, e.g. /proc/<pid>/ns/net)"),
    # user namespace and id mappings
    (add_namespace("user"), "linux.uidMappings", "a new user namespace needs uidMappings"),
    (put("linux.uidMappings", [{"containerID": 0, "hostID": 1000, "size": 1}]), "linux.uidMappings",
     'id mappings need a user namespace (add {"type": "user"} to linux.namespaces)'),
    (both(USERNS, put("linux.gidMappings[0].containerID", 1)), "linux.gidMappings",
     "must map the container's root (gid 0)"),
    (both(USERNS, put("linux.uidMappings[0].size", 0)), "linux.uidMappings[0].size", "between 1 and"),
    (both(USERNS, put("linux.uidMappings[0].hostID", -5)), "linux.uidMappings[0].hostID", "between 0 and"),
    (both(USERNS, put("linux.uidMappings[0].hostID", 2**32 - 10)), "linux.uidMappings[0].size", "go past 4294967295"),
    (both(USERNS, lambda s: s["linux"]["uidMappings"].append({"containerID": 100, "hostID": 1, "size": 10})),
     "linux.uidMappings", "ranges overlap at containerID 100"),
    (both(USERNS, put("process.user.uid", 70000)), "process.user.uid",
     "70000 is not mapped in the container's user namespace (linux.uidMappings)"),
    (both(USERNS, put("process.user.additionalGids", [65536])), "process.user.additionalGids[0]",
     "(linux.gidMappings)"),
    # mounts
    (put("mounts", {"/proc": {}}), "mounts", "must be a list"),
    (put("mounts[0]", []), "mounts[0]", "must be an object"),
    (put("mounts[1].destination", DELETE), "mounts[1].destination", "is required"),
    (put("mounts[1].destination", ""), "mounts[1].destination", "must not be empty"),
    (put("mounts[1].options", "ro"), "mounts[1].options", "must be a list of strings"),
    (put("mounts[1].options[2]", None), "mounts[1].options[2]", "must be a string, got null"),
    (put("mounts[1].type", DELETE), "mounts[1].type", "must name a filesystem type"),
    (add_mount(destination="/x", type="none", source="/no/such/dir", options=["rbind"]), "mounts[7].source",
     "bind mount source /no/such/dir does not exist"),
    (add_mount(destination="/x", type="bind", options=["ro"]), "mounts[7].source", "a bind mount needs a source"),
    (add_mount(destination="/x", source="data", options=["bind", "shared", "rprivate"]), "mounts[7].options",
     "more than one propagation type"),
    (add_mount(destination="/x", source="data", options=["bind", "idmap"]), "mounts[7]", "id-mapped mounts"),
    (add_mount(destination="/x", source="data", options=["bind"], uidMappings=[]), "mounts[7]", "not supported"),
    # devices
    (put("linux.devices", [{"path": "dev/x", "type": "c", "major": 1, "minor": 3}]), "linux.devices[0].path",
     "must be an absolute path"),
    (put("linux.devices", [{"path": "/dev/x", "type": "x"}]), "linux.devices[0].type",
     'unknown value "x" (expected one of c, b, u, p)'),
    (put("linux.devices", [{"path": "/dev/x", "type": "c", "minor": 3}]), "linux.devices[0].major", "is required"),
    (put("linux.devices", [{"path": "/dev/x", "type": "b", "major": 8, "minor": 0, "uid": -1}]),
     "linux.devices[0].uid", "between 0 and"),
    # resources
    (put("linux.resources", []), "linux.resources", "must be an object"),
    (put("linux.resources.memory", {"limit": "1g"}), "linux.resources.memory.limit", 'must be an integer, got "1g"'),
    (put("linux.resources.memory", {"limit": 2**20, "swap": 2**19}), "linux.resources.memory.swap",
     "is below memory.limit"),
    (put("linux.resources.memory", {"swap": 2**20}), "linux.resources.memory.swap", "needs a memory.limit too"),
    (put("linux.resources.memory", {"disableOOMKiller": 1}), "linux.resources.memory.disableOOMKiller",
     "must be true or false"),
    (put("linux.resources.cpu", {"shares": -1}), "linux.resources.cpu.shares", "between 0 and"),
    (put("linux.resources.cpu", {"cpus": "0-2,a"}), "linux.resources.cpu.cpus", 'must be a list like "0-2,4"'),
    (put("linux.resources.cpu", {"mems": 0}), "linux.resources.cpu.mems", "must be a string"),
    (put("linux.resources.pids", {"limit": 1.5}), "linux.resources.pids.limit", "must be an integer"),
    (put("linux.resources.blockIO", {"weight": 70000}), "linux.resources.blockIO.weight", "between 0 and 65535"),
    (put("linux.resources.blockIO", {"throttleReadBpsDevice": [{"major": 8, "minor": 0}]}),
     "linux.resources.blockIO.throttleReadBpsDevice[0].rate", "is required"),
    (put("linux.resources.hugepageLimits", [{"pageSize": "2MB"}]), "linux.resources.hugepageLimits[0].limit",
     "is required"),
    (put("linux.resources.rdma", {"mlx": {"hcaHandles": -1}}), 'linux.resources.rdma["mlx"].hcaHandles', "between"),
    (put("linux.resources.unified", {"memory.high": 5}), 'linux.resources.unified["memory.high"]', "must be a string"),
    (put("linux.resources.devices[0].allow", DELETE), "linux.resources.devices[0].allow", "is required"),
    (put("linux.resources.devices[0].type", "x"), "linux.resources.devices[0].type", "expected one of a, b, c"),
    (put("linux.resources.devices[0].access", "rx"), "linux.resources.devices[0].access",
     'must be made of r, w and m (e.g. "rwm"), got "rx"'),
    (put("linux.resources.devices[0].access", DELETE), "linux.resources.devices[0].access", "must be made of"),
    (put("linux.cgroupsPath", 5), "linux.cgroupsPath", "must be a string"),
    # sysctl, as runc's validator
    (put("linux.sysctl", {"net.ipv4.ip_forward": 1}), 'linux.sysctl["net.ipv4.ip_forward"]', "must be a string"),
    (both(drop_namespace("network"), put("linux.sysctl", {"net.ipv4.ip_forward": "1"})),
     'linux.sysctl["net.ipv4.ip_forward"]', "not allowed in the host's network namespace"),
    (both(drop_namespace("network"), add_namespace("network", path="/proc/self/ns/net"),
          put("linux.sysctl", {"net/ipv4/ip_forward": "1"})), 'linux.sysctl["net/ipv4/ip_forward"]', "host's network"),
    (both(drop_namespace("ipc"), put("linux.sysctl", {"kernel.shmmax": "1"})), 'linux.sysctl["kernel.shmmax"]',
     "needs an ipc namespace"),
    (both(drop_namespace("ipc"), put("linux.sysctl", {"fs.mqueue.msg_max": "1"})),
     'linux.sysctl["fs.mqueue.msg_max"]', "needs an ipc namespace"),
    (put("linux.sysctl", {"kernel.hostname": "x"}), 'linux.sysctl["kernel.hostname"]',
     'conflicts with the "hostname" field'),
    (both(drop_namespace("uts"), put("hostname", ""), put("linux.sysctl", {"kernel.domainname": "x"})),
     'linux.sysctl["kernel.domainname"]', "would change the host"),
    (put("linux.sysctl", {"vm.swappiness": "0"}), 'linux.sysctl["vm.swappiness"]', "would change the host"),
    (put("linux.sysctl", {"kernel.msgmaxx": "0"}), 'linux.sysctl["kernel.msgmaxx"]', "would change the host"),
    # paths, propagation
    (put("linux.maskedPaths[3]", "proc/keys"), "linux.maskedPaths[3]", "must be an absolute path"),
    (put("linux.readonlyPaths", "/proc"), "linux.readonlyPaths", "must be a list"),
    (drop_namespace("mount"), "linux.maskedPaths", "needs a mount namespace"),
    (put("linux.rootfsPropagation", "recursive"), "linux.rootfsPropagation", 'unknown value "recursive"'),
    # seccomp
    (put("linux.seccomp", "unconfined"), "linux.seccomp", "must be an object"),
    (put("linux.seccomp", dict(SECCOMP, defaultAction="SCMP_ACT_DENY")), "linux.seccomp.defaultAction",
     'unknown value "SCMP_ACT_DENY"'),
    (put("linux.seccomp", dict(SECCOMP, architectures=["SCMP_ARCH_Z80"])), "linux.seccomp.architectures[0]",
     "SCMP_ARCH_Z80"),
    (put("linux.seccomp", dict(SECCOMP, flags=["SECCOMP_FILTER_FLAG_FOO"])), "linux.seccomp.flags[0]",
     "unknown value"),
    (put("linux.seccomp", dict(SECCOMP, flags=["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"])), "linux.seccomp.flags[0]",
     "is not supported by orlop-runtime"),
    (put("linux.seccomp", dict(SECCOMP, syscalls=[{"names": [], "action": "SCMP_ACT_LOG"}])),
     "linux.seccomp.syscalls[0].names", "must be a non-empty list of syscall names"),
    (put("linux.seccomp", dict(SECCOMP, syscalls=[{"names": ["read"], "action": "SCMP_ACT_NOPE"}])),
     "linux.seccomp.syscalls[0].action", "SCMP_ACT_NOPE"),
    (put("linux.seccomp", dict(SECCOMP, syscalls=[{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                                                   "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_LIKE"}]}])),
     "linux.seccomp.syscalls[0].args[0].op", 'unknown value "SCMP_CMP_LIKE"'),
    (put("linux.seccomp", dict(SECCOMP, syscalls=[{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                                                   "args": [{"index": 6, "op": "SCMP_CMP_EQ"}]}])),
     "linux.seccomp.syscalls[0].args[0].index", "between 0 and 5"),
    (put("linux.seccomp", dict(SECCOMP, syscalls=[{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}])),
     "linux.seccomp.listenerPath", "SCMP_ACT_NOTIFY needs a listenerPath"),
    (put("linux.seccomp", dict(SECCOMP, listenerPath="/s", syscalls=[{"names": ["write"], "action": "SCMP_ACT_NOTIFY"}])),
     "linux.seccomp.syscalls[0].action", "cannot be used for write"),
    # personality, time namespace
    (put("linux.personality", {"domain": "LINUX64"}), "linux.personality.domain", 'unknown value "LINUX64"'),
    (put("linux.timeOffsets", {"monotonic": {"secs": 1}}), "linux.timeOffsets", "needs a time namespace"),
    (both(add_namespace("time", path="/proc/self/ns/time"), put("linux.timeOffsets", {"boottime": {"secs": 1}})),
     "linux.timeOffsets", "not on one joined by path"),
    (both(add_namespace("time"), put("linux.timeOffsets", {"realtime": {"secs": 1}})),
     'linux.timeOffsets["realtime"]', "expected one of monotonic, boottime"),
    (both(add_namespace("time"), put("linux.timeOffsets", {"boottime": {"nanosecs": 10**9}})),
     'linux.timeOffsets["boottime"].nanosecs', "between 0 and 999999999"),
    (put("linux.intelRdt", {"closID": "x", "l3CacheSchema": "L3:0=f"}), "linux.intelRdt.l3CacheSchema",
     "not supported"),
    # hooks, annotations
    (put("hooks", {"prestart": [{"path": "true"}]}), "hooks.prestart[0].path", "must be an absolute path"),
    (put("hooks", {"poststop": [{"args": ["x"]}]}), "hooks.poststop[0].path", "is required"),
    (put("hooks", {"createRuntime": [{"path": "/bin/true", "timeout": 0}]}), "hooks.createRuntime[0].timeout",
     "greater than zero, got 0"),
    (put("hooks", {"startContainer": [{"path": "/bin/true", "args": "x"}]}), "hooks.startContainer[0].args",
     "must be a list of strings"),
    (put("hooks", {"poststart": {"path": "/bin/true"}}), "hooks.poststart", "must be a list"),
    (put("annotations", {"com.example": 1}), 'annotations["com.example"]', "must be a string, got 1"),
    (put("annotations", {"": "x"}), 'annotations[""]', "needs a name"),
    (put("annotations", ["a=b"]), "annotations", "must be an object"),
    (put("linux", []), "linux", "must be an object"),
]


@pytest.mark.parametrize(("mutate", "path", "message"), ERRORS, ids=[f"{i}-{e[1]}" for i, e in enumerate(ERRORS)])
def test_error_names_the_path(bundle, mutate, path, message):
    spec = default_spec()
    mutate(spec)
    with pytest.raises(ConfigError) as caught:
        validate(spec, bundle)
    assert str(caught.value).startswith(f"config.json: {path}: "), str(caught.value)
    assert caught.value.path == path
    assert message in str(caught.value)


def test_not_an_object_at_the_top(bundle):
    with pytest.raises(ConfigError, match=r"^config.json: \(top level\): must be an object, got \[\]"):
        validate([], bundle)


def _paths(value, path=()):
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _paths(item, (*path, i))


WRONG = [None, 1.5, -1, 2**70, True, "", "x", "/", [], [1], ["x"], {}, {"a": 1}]


def test_any_wrong_type_anywhere_is_a_config_error(bundle):
    """Never a TypeError, KeyError or AttributeError: each part of a full config replaced by
    values of the wrong type either passes or is a ConfigError."""
    spec = full_spec()
    for path in list(_paths(spec))[1:]:
        for wrong in WRONG:
            mutated = copy.deepcopy(spec)
            parent = mutated
            for key in path[:-1]:
                parent = parent[key]
            parent[path[-1]] = wrong
            try:
                validate(mutated, bundle)
            except ConfigError:
                pass
            except Exception as e:  # pragma: no cover - the failure report
                pytest.fail(f"{'.'.join(map(str, path))} = {wrong!r}: {type(e).__name__}: {e}")


def test_rootless_needs_a_user_namespace_and_mapped_mount_ids(bundle, monkeypatch):
    monkeypatch.setattr(rs.os, "geteuid", lambda: 1000)
    with pytest.raises(ConfigError, match=r"^config.json: linux.namespaces: .*needs a user namespace"):
        validate(default_spec(), bundle)
    spec = default_spec(rootless=True)
    validate(spec, bundle)
    spec["mounts"][2]["options"].append("gid=5")  # runc spec --rootless drops it: gid 5 is not mapped
    with pytest.raises(ConfigError, match=r"^config.json: mounts\[2\].options: gid=5: gid 5 is not mapped"):
        validate(spec, bundle)


# -- mount options ---------------------------------------------------------------------------------

MS = rs
MOUNT_OPTION_TABLE = [
    ([], (0, 0, 0, "")),
    (["nosuid", "noexec", "nodev", "ro"], (MS.MS_NOSUID | MS.MS_NOEXEC | MS.MS_NODEV | MS.MS_RDONLY, 0, 0, "")),
    (["ro", "rw"], (0, MS.MS_RDONLY, 0, "")),
    (["rw", "ro"], (MS.MS_RDONLY, 0, 0, "")),
    (["suid", "dev", "exec", "async", "atime", "diratime", "nomand", "loud"],
     (0, MS.MS_NOSUID | MS.MS_NODEV | MS.MS_NOEXEC | MS.MS_SYNCHRONOUS | MS.MS_NOATIME | MS.MS_NODIRATIME
      | MS.MS_MANDLOCK | MS.MS_SILENT, 0, "")),
    (["bind"], (MS.MS_BIND, 0, 0, "")),
    (["rbind", "ro"], (MS.MS_BIND | MS.MS_REC | MS.MS_RDONLY, 0, 0, "")),
    (["remount", "sync", "dirsync", "mand", "silent", "iversion", "lazytime", "nosymfollow"],
     (MS.MS_REMOUNT | MS.MS_SYNCHRONOUS | MS.MS_DIRSYNC | MS.MS_MANDLOCK | MS.MS_SILENT | MS.MS_I_VERSION
      | MS.MS_LAZYTIME | MS.MS_NOSYMFOLLOW, 0, 0, "")),
    (["noatime", "nodiratime", "relatime", "strictatime"],
     (MS.MS_NOATIME | MS.MS_NODIRATIME | MS.MS_RELATIME | MS.MS_STRICTATIME, 0, 0, "")),
    (["norelatime", "nostrictatime", "noiversion", "nolazytime", "symfollow"],
     (0, MS.MS_RELATIME | MS.MS_STRICTATIME | MS.MS_I_VERSION | MS.MS_LAZYTIME | MS.MS_NOSYMFOLLOW, 0, "")),
    (["defaults"], (0, 0, 0, "")),
    (["private"], (0, 0, MS.MS_PRIVATE, "")),
    (["rprivate"], (0, 0, MS.MS_PRIVATE | MS.MS_REC, "")),
    (["rshared"], (0, 0, MS.MS_SHARED | MS.MS_REC, "")),
    (["slave"], (0, 0, MS.MS_SLAVE, "")),
    (["rslave"], (0, 0, MS.MS_SLAVE | MS.MS_REC, "")),
    (["shared", "unbindable"], (0, 0, MS.MS_SHARED | MS.MS_UNBINDABLE, "")),
    (["runbindable"], (0, 0, MS.MS_UNBINDABLE | MS.MS_REC, "")),
    (["nosuid", "strictatime", "mode=755", "size=65536k"], (MS.MS_NOSUID | MS.MS_STRICTATIME, 0, 0, "mode=755,size=65536k")),
    (["newinstance", "ptmxmode=0666", "mode=0620", "gid=5"], (0, 0, 0, "newinstance,ptmxmode=0666,mode=0620,gid=5")),
    (["tmpcopyup", "idmap", "ridmap", "mode=1777"], (0, 0, 0, "mode=1777")),  # for the runtime, not mount(2)
    (["acl", "lowerdir=/a:/b"], (0, 0, 0, "acl,lowerdir=/a:/b")),  # unknown: filesystem data
    (["rbind", "rro", "rnosuid", "rnodev", "rnoexec"],  # recursive options apply to the mount itself too
     (MS.MS_BIND | MS.MS_REC | MS.MS_RDONLY | MS.MS_NOSUID | MS.MS_NODEV | MS.MS_NOEXEC, 0, 0, "")),
    (["rrw", "rsuid", "rdev", "rexec", "ratime", "rdiratime", "rsymfollow"],
     (0, MS.MS_RDONLY | MS.MS_NOSUID | MS.MS_NODEV | MS.MS_NOEXEC | MS.MS_NOATIME | MS.MS_NODIRATIME
      | MS.MS_NOSYMFOLLOW, 0, "")),
]


@pytest.mark.parametrize(("options", "expected"), MOUNT_OPTION_TABLE)
def test_parse_mount_options(options, expected):
    assert parse_mount_options(options) == expected


A = rs
MOUNT_ATTR_TABLE = [
    (["rbind", "ro", "mode=1"], (0, 0)),
    (["rro"], (A.MOUNT_ATTR_RDONLY, 0)),
    (["rro", "rrw"], (0, A.MOUNT_ATTR_RDONLY)),
    (["rnosuid", "rnodev", "rnoexec", "rnodiratime", "rnosymfollow"],
     (A.MOUNT_ATTR_NOSUID | A.MOUNT_ATTR_NODEV | A.MOUNT_ATTR_NOEXEC | A.MOUNT_ATTR_NODIRATIME
      | A.MOUNT_ATTR_NOSYMFOLLOW, 0)),
    (["rsuid", "rdev", "rexec", "rdiratime", "rsymfollow"],
     (0, A.MOUNT_ATTR_NOSUID | A.MOUNT_ATTR_NODEV | A.MOUNT_ATTR_NOEXEC | A.MOUNT_ATTR_NODIRATIME
      | A.MOUNT_ATTR_NOSYMFOLLOW)),
    # atime modes replace the whole field: MOUNT_ATTR__ATIME is always cleared with them
    (["rnoatime"], (A.MOUNT_ATTR_NOATIME, A.MOUNT_ATTR__ATIME)),
    (["rstrictatime"], (A.MOUNT_ATTR_STRICTATIME, A.MOUNT_ATTR__ATIME)),
    (["rnoatime", "rrelatime"], (A.MOUNT_ATTR_RELATIME, A.MOUNT_ATTR__ATIME)),
    (["rstrictatime", "ratime"], (A.MOUNT_ATTR_RELATIME, A.MOUNT_ATTR__ATIME)),
    (["rro", "rnoatime", "rnodev"], (A.MOUNT_ATTR_RDONLY | A.MOUNT_ATTR_NOATIME | A.MOUNT_ATTR_NODEV,
                                     A.MOUNT_ATTR__ATIME)),
]


@pytest.mark.parametrize(("options", "expected"), MOUNT_ATTR_TABLE)
def test_parse_mount_attrs(options, expected):
    assert parse_mount_attrs(options) == expected


def test_mount_options_extensions_and_idmap():
    parsed = rs.MountOptions(["rbind", "tmpcopyup", "ridmap", "size=1m"])
    assert (parsed.extensions, parsed.idmap, parsed.data) == ({"tmpcopyup"}, "ridmap", "size=1m")


def test_mount_constants_agree_with_the_syscall_bindings():
    from orlop.linux import syscalls

    names = [n for n in dir(syscalls) if n.startswith("MS_")]
    assert names
    for name in names:
        assert getattr(rs, name) == getattr(syscalls, name), name


# -- namespaces, capabilities -----------------------------------------------------------------------

def test_namespace_clone_flags():
    assert rs.namespace_clone_flag("mount") == rs.CLONE_NEWNS == 0x20000
    assert rs.namespace_clone_flag("network") == rs.CLONE_NEWNET
    for kind, flag in rs.NAMESPACE_FLAGS.items():
        attr = "CLONE_NEW" + {"mount": "NS", "network": "NET"}.get(kind, kind.upper())
        if hasattr(os, attr):  # Python >= 3.12 has them
            assert getattr(os, attr) == flag, kind
    assert len(set(rs.NAMESPACE_FLAGS.values())) == 8
    with pytest.raises(ValueError, match="unknown namespace type 'foo'"):
        rs.namespace_clone_flag("foo")


def test_capabilities_table_is_the_kernels():
    from orlop.linux.caps import CAP_NAMES

    assert rs.CAPABILITIES == CAP_NAMES
    assert sorted(rs.CAPABILITIES.values()) == list(range(len(rs.CAPABILITIES)))
    if os.path.exists("/proc/sys/kernel/cap_last_cap"):
        with open("/proc/sys/kernel/cap_last_cap") as f:
            assert int(f.read()) <= max(rs.CAPABILITIES.values()), "a kernel cap this table does not name"


def test_rlimit_numbers_are_the_kernels():
    import resource

    for name, number in rs.RLIMITS.items():
        if hasattr(resource, name):
            assert getattr(resource, name) == number, name


# -- spec, features ---------------------------------------------------------------------------------

def test_default_spec_is_a_fresh_copy_each_time():
    first = default_spec()
    first["process"]["capabilities"]["bounding"].append("CAP_SYS_ADMIN")
    first["linux"]["maskedPaths"].clear()
    first["mounts"][1]["options"].append("x")
    assert default_spec() == default_spec() != first


def test_rootless_spec_maps_the_caller():
    spec = default_spec(rootless=True)
    assert spec["linux"]["uidMappings"] == [{"containerID": 0, "hostID": os.geteuid(), "size": 1}]
    assert spec["linux"]["gidMappings"] == [{"containerID": 0, "hostID": os.getegid(), "size": 1}]
    assert [n["type"] for n in spec["linux"]["namespaces"]] == ["pid", "ipc", "uts", "mount", "user"]
    assert "resources" not in spec["linux"]
    assert not any(o.startswith(("gid=", "uid=")) for m in spec["mounts"] for o in m.get("options", []))


@needs_runc
@pytest.mark.parametrize("rootless", [False, True])
def test_default_spec_is_what_runc_spec_writes(tmp_path, rootless):
    """Byte for byte, key order included (runc writes tab-indented JSON)."""
    subprocess.run([RUNC, "spec", *(["--rootless"] if rootless else [])], cwd=tmp_path, check=True)
    written = (tmp_path / "config.json").read_text()
    assert json.loads(written) == default_spec(rootless)
    assert json.dumps(default_spec(rootless), indent="\t") == written
    (tmp_path / "rootfs").mkdir()
    validate(json.loads(written), str(tmp_path))


def test_features_shape():
    doc = features("1.2.3")
    assert json.loads(json.dumps(doc)) == doc
    assert (doc["ociVersionMin"], doc["ociVersionMax"]) == ("1.0.0", "1.2.0")
    assert doc["hooks"] == list(rs.HOOK_KINDS)
    assert doc["annotations"] == {"io.github.orlop.version": "1.2.3"}
    linux = doc["linux"]
    assert linux["namespaces"] == ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"]
    assert linux["capabilities"][0] == "CAP_CHOWN" and linux["capabilities"][-1] == "CAP_CHECKPOINT_RESTORE"
    assert len(linux["capabilities"]) == len(rs.CAPABILITIES)
    assert set(linux["cgroup"]) == {"v1", "v2", "systemd", "systemdUser", "rdma"}
    assert set(linux["seccomp"]) == {"enabled", "actions", "operators", "archs", "knownFlags", "supportedFlags"}
    assert set(linux["seccomp"]["supportedFlags"]) <= set(linux["seccomp"]["knownFlags"])
    assert linux["intelRdt"] == {"enabled": False}
    assert linux["mountExtensions"] == {"idmap": {"enabled": False}}
    assert all(isinstance(linux[k]["enabled"], bool) for k in ("apparmor", "selinux"))
    assert features("1", ["CAP_CHOWN"])["linux"]["capabilities"] == ["CAP_CHOWN"]


def test_features_lists_what_validate_accepts(bundle):
    """Every option features names is recognized (none becomes filesystem data), and every
    seccomp name and namespace it names passes validate."""
    doc = features("0")
    for option in doc["mountOptions"]:
        assert rs.MountOptions([option]).data == "", option
    spec = default_spec()
    spec["linux"]["namespaces"] = [{"type": kind} for kind in doc["linux"]["namespaces"] if kind != "user"]
    spec["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW", "architectures": doc["linux"]["seccomp"]["archs"],
        "flags": doc["linux"]["seccomp"]["supportedFlags"], "listenerPath": "/run/x.sock",
        "syscalls": [{"names": ["getcwd"], "action": action,
                      "args": [{"index": 0, "value": 1, "op": op} for op in doc["linux"]["seccomp"]["operators"]]}
                     for action in doc["linux"]["seccomp"]["actions"]]}
    spec["process"]["capabilities"] = {"bounding": doc["linux"]["capabilities"]}
    validate(spec, bundle)


@needs_runc
def test_features_cover_runcs():
    done = subprocess.run([RUNC, "features"], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip("this runc has no `features`")
    theirs, ours = json.loads(done.stdout), features("0")
    # runc 1.1 still listed acl/noacl (dropped later: no MS_ flag); here they are filesystem data.
    assert set(theirs["mountOptions"]) - {"acl", "noacl"} <= set(ours["mountOptions"])
    assert set(theirs["linux"]["namespaces"]) <= set(ours["linux"]["namespaces"])
    assert theirs["linux"]["capabilities"] == ours["linux"]["capabilities"]
    assert set(theirs["linux"]["seccomp"]["actions"]) == set(ours["linux"]["seccomp"]["actions"])
    assert set(theirs["linux"]["seccomp"]["operators"]) == set(ours["linux"]["seccomp"]["operators"])


def test_runtime_spec_import_stays_lean():
    """The module is on every create's path: it pulls in none of the slow stdlib modules."""
    code = ("import sys; before = set(sys.modules); import orlop.oci.runtime_spec; "
            "print(' '.join(sorted(set(sys.modules) - before)))")
    added = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split())
    assert added <= {"__future__", "orlop", "orlop.oci", "orlop.oci.runtime_spec"}, added
