"""seccomp profiles: validation messages, compilation with libseccomp, the ENOSYS prefix
and the cache of compiled programs. No root needed: the programs are run here by a
small classic-BPF interpreter, never installed."""

from __future__ import annotations

import copy
import json
import os
import struct
import subprocess
import sys

import pytest

from data.seccomp.moby_profile import DOCKER_DEFAULT, MISSING, docker_default_profile
from orlop.linux import seccomp

# AUDIT_ARCH_* values, x86_64 syscall numbers and <seccomp.h> return values.
X86_64, I386, AARCH64 = 0xC000003E, 0x40000003, 0xC00000B7
X32_BIT = 0x40000000
NR = {"read": 0, "getpid": 39, "clone": 56, "uname": 63, "mkdir": 83, "getcwd": 79, "personality": 135,
      "keyctl": 250, "unshare": 272, "clone3": 435}
ALLOW, KILL_THREAD, KILL_PROCESS, TRAP, LOG, NOTIFY = 0x7FFF0000, 0, 0x80000000, 0x30000, 0x7FFC0000, 0x7FC00000


def errno_ret(n: int) -> int:
    return 0x50000 | n


def run_bpf(program: bytes, nr: int, arch: int = X86_64, args: tuple[int, ...] = ()) -> int:
    """What the kernel's seccomp would return for a call: interprets the instructions that
    libseccomp and the ENOSYS prefix use, and fails on any other."""
    data = struct.pack("=iIQ6Q", nr, arch, 0, *(list(args) + [0] * 6)[:6])
    insns = list(struct.iter_unpack("=HBBI", program))
    a, pc = 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        pc += 1
        if code == 0x20:  # ld [k]
            a = struct.unpack_from("=I", data, k)[0]
        elif code == 0x54:  # and #k
            a &= k
        elif code == 0x05:  # ja k
            pc += k
        elif code in (0x15, 0x25, 0x35, 0x45):  # jeq, jgt, jge, jset #k
            taken = {0x15: a == k, 0x25: a > k, 0x35: a >= k, 0x45: bool(a & k)}[code]
            pc += jt if taken else jf
        elif code == 0x06:  # ret #k
            return k
        else:
            raise AssertionError(f"instruction {code:#x} at {pc - 1} is not interpreted here")


def profile_with(*rules: dict, default: str = "SCMP_ACT_ALLOW", **fields) -> dict:
    return {"defaultAction": default, "syscalls": list(rules), **fields}


def rule(names: list[str], action: str = "SCMP_ACT_ERRNO", **fields) -> dict:
    return {"names": names, "action": action, **fields}


@pytest.fixture(scope="module")
def docker_profile() -> dict:
    if not os.path.exists(DOCKER_DEFAULT):
        pytest.skip(MISSING)
    return docker_default_profile(arch="amd64", kernel=(6, 1))


@pytest.fixture(scope="module")
def docker_bpf(docker_profile) -> bytes:
    return seccomp.compile_filter(docker_profile)


# ---------------------------------------------------------------------------------------------------
# Validation


def _set(path: str, value):
    """A profile edit: set `value` at a dotted path such as 'syscalls.0.args.0.op'."""
    def edit(profile: dict) -> dict:
        *parents, last = path.split(".")
        node = profile
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if isinstance(node, list):
            node[int(last)] = value
        elif value is None:
            node.pop(last, None)
        else:
            node[last] = value
        return profile
    return edit


VALID = profile_with(
    rule(["getcwd"], "SCMP_ACT_LOG"), rule(["read"], "SCMP_ACT_KILL"),
    rule(["mkdir", "mkdirat"], errnoRet=38),
    rule(["personality"], args=[{"index": 0, "value": 0xFFFFFFFF, "op": "SCMP_CMP_EQ"}]),
    rule(["write"], "SCMP_ACT_TRACE", errnoRet=3),
    architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"], flags=["SECCOMP_FILTER_FLAG_LOG"],
    listenerPath="/run/agent.sock", listenerMetadata="m")


@pytest.mark.parametrize(("edit", "message"), [
    (_set("defaultAction", None), "linux.seccomp.defaultAction: missing; expected one of SCMP_ACT_ALLOW, "),
    (_set("syscalls.3.action", "SCMP_ACT_FOO"),
     'linux.seccomp.syscalls[3].action: unknown action "SCMP_ACT_FOO" (expected one of SCMP_ACT_ALLOW, '),
    (_set("defaultAction", "SCMP_ACT_NOTIFY"), "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the "),
    (_set("defaultErrnoRet", 1), "linux.seccomp.defaultErrnoRet: SCMP_ACT_ALLOW returns no errno"),
    (_set("syscalls.0.errnoRet", 1), "linux.seccomp.syscalls[0].errnoRet: SCMP_ACT_LOG returns no errno"),
    (_set("syscalls.2.errnoRet", 4096), "linux.seccomp.syscalls[2].errnoRet: must be an integer from 0 to 4095"),
    (_set("syscalls.2.errnoRet", True), "linux.seccomp.syscalls[2].errnoRet: must be an integer from 0 to "),
    (_set("syscalls.4.errnoRet", 65536), "linux.seccomp.syscalls[4].errnoRet: must be an integer from 0 to 65535"),
    (_set("architectures.1", "SCMP_ARCH_Z80"), 'linux.seccomp.architectures[1]: unknown architecture "SCMP_ARCH_Z80"'),
    (_set("architectures", "SCMP_ARCH_X86"), "linux.seccomp.architectures: must be a list, not str"),
    (_set("flags.0", "SECCOMP_FILTER_FLAG_NEW_LISTENER"),
     'linux.seccomp.flags[0]: unknown flag "SECCOMP_FILTER_FLAG_NEW_LISTENER" (expected one of '),
    (_set("listenerPath", None), "linux.seccomp.listenerMetadata: set without listenerPath"),
    (_set("listenerPath", "/" + "x" * 107), "linux.seccomp.listenerPath: 108 bytes long, but a unix socket path"),
    (_set("syscalls", {"names": ["read"]}), "linux.seccomp.syscalls: must be a list, not dict"),
    (_set("syscalls.1", "read"), "linux.seccomp.syscalls[1]: must be an object, not str"),
    (_set("syscalls.1.names", []), "linux.seccomp.syscalls[1].names: must be a non-empty list of syscall names"),
    (_set("syscalls.2.names.1", 42), "linux.seccomp.syscalls[2].names[1]: must be a syscall name, not 42"),
    (_set("syscalls.1.action", None), "linux.seccomp.syscalls[1].action: missing; expected one of "),
    (_set("syscalls.4.action", "SCMP_ACT_NOTIFY"),
     "linux.seccomp.syscalls[4].errnoRet: SCMP_ACT_NOTIFY returns no errno"),
    (_set("syscalls.3.args.0.index", 6),
     "linux.seccomp.syscalls[3].args[0].index: must be a syscall argument number from 0 to 5, not 6"),
    (_set("syscalls.3.args.0.op", "SCMP_CMP_XX"),
     'linux.seccomp.syscalls[3].args[0].op: unknown operator "SCMP_CMP_XX" (expected one of SCMP_CMP_EQ, '),
    (_set("syscalls.3.args.0.op", None), "linux.seccomp.syscalls[3].args[0].op: missing; expected one of "),
    (_set("syscalls.3.args.0.value", -1), "linux.seccomp.syscalls[3].args[0].value: must be an integer from 0 to "),
    (_set("syscalls.3.args.0.valueTwo", 1 << 64), "linux.seccomp.syscalls[3].args[0].valueTwo: must be an "),
])
def test_validation_names_the_field(edit, message):
    profile = edit(copy.deepcopy(VALID))
    with pytest.raises(seccomp.SeccompError) as raised:
        seccomp.validate(profile)
    assert str(raised.value).startswith(message), str(raised.value)


def test_notify_is_refused_for_the_calls_the_runtime_makes_after_loading():
    notify_write = profile_with(rule(["mkdir", "write"], "SCMP_ACT_NOTIFY"))
    with pytest.raises(seccomp.SeccompError, match=r"syscalls\[0\]\.names\[1\]: SCMP_ACT_NOTIFY cannot be used"):
        seccomp.validate(notify_write)
    seccomp.validate(profile_with(rule(["mkdir"], "SCMP_ACT_NOTIFY")))


def test_valid_profiles_pass(docker_profile):
    seccomp.validate(VALID)
    seccomp.validate(docker_profile)
    for action in ("SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP", "SCMP_ACT_NOTIFY"):
        seccomp.validate(profile_with(rule(["read"], action)))
    for op in seccomp.OPERATORS:
        seccomp.validate(profile_with(rule(["read"], args=[{"index": 5, "value": 1, "valueTwo": 2, "op": op}])))


def test_a_profile_without_default_action_and_syscalls_means_no_filter():
    """As in runc and dockerd; nothing is compiled and nothing is installed."""
    profile = {"architectures": ["SCMP_ARCH_X86_64"], "flags": []}
    seccomp.validate(profile)
    assert seccomp.compile_filter(profile) == b""
    assert seccomp.load_filter(b"") is None


def test_validation_and_import_stay_off_the_hot_path():
    """Importing the module pulls in none of the slow modules, and validation does not load
    libseccomp (the runtime validates in processes that never compile)."""
    script = (
        "import sys, orlop.linux\n"
        "before = set(sys.modules)\n"
        "from orlop.linux import seccomp\n"
        "seccomp.validate({'defaultAction': 'SCMP_ACT_ERRNO', 'syscalls': [{'names': ['read'], "
        "'action': 'SCMP_ACT_ALLOW'}]})\n"
        "slow = {'re', 'json', 'enum', 'dataclasses', 'typing', 'signal', 'socket', 'pathlib', 'subprocess',\n"
        "        'logging', 'hashlib', 'orlop.fastjson'}\n"
        "print(sorted(slow & (set(sys.modules) - before)))\n"
        "print('libseccomp' in open('/proc/self/maps').read())\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[:2] == ["[]", "False"]


# ---------------------------------------------------------------------------------------------------
# Compilation


def test_docker_default_profile_compiles(docker_profile, docker_bpf):
    assert len(docker_bpf) % 8 == 0 and 100 < len(docker_bpf) // 8 <= 4096
    assert seccomp.compile_filter(docker_profile) == docker_bpf, "the same profile gives the same program"


def test_unknown_syscall_names_are_skipped():
    known = seccomp.compile_filter(profile_with(rule(["mkdir"], errnoRet=38)))
    mixed = seccomp.compile_filter(profile_with(rule(["no_such_syscall_ever", "mkdir"], errnoRet=38)))
    assert mixed == known
    assert run_bpf(mixed, NR["mkdir"]) == errno_ret(38)
    only_unknown = seccomp.compile_filter(profile_with(rule(["no_such_syscall_ever"])))
    assert only_unknown == seccomp.compile_filter(profile_with())


def test_rule_equal_to_default_action_is_dropped():
    plain = seccomp.compile_filter(profile_with(default="SCMP_ACT_ERRNO"))
    same = seccomp.compile_filter(profile_with(rule(["read"], errnoRet=1), rule(["getpid"]),
                                               default="SCMP_ACT_ERRNO"))
    assert run_bpf(same, NR["read"]) == errno_ret(1)
    assert len(same) > len(plain), "they still count for the ENOSYS prefix, as in runc"
    assert run_bpf(same, 1000) == errno_ret(38)


@pytest.mark.parametrize(("action", "errno_field", "expected"), [
    ("SCMP_ACT_ERRNO", {}, errno_ret(1)),  # EPERM unless told otherwise, as runc
    ("SCMP_ACT_ERRNO", {"errnoRet": 38}, errno_ret(38)),
    ("SCMP_ACT_ERRNO", {"errnoRet": 0}, errno_ret(0)),
    ("SCMP_ACT_TRACE", {}, 0x7FF00000 | 1),
    ("SCMP_ACT_TRACE", {"errnoRet": 7}, 0x7FF00000 | 7),
    ("SCMP_ACT_KILL", {}, KILL_THREAD),
    ("SCMP_ACT_KILL_THREAD", {}, KILL_THREAD),
    ("SCMP_ACT_KILL_PROCESS", {}, KILL_PROCESS),
    ("SCMP_ACT_TRAP", {}, TRAP),
    ("SCMP_ACT_LOG", {}, LOG),
    ("SCMP_ACT_NOTIFY", {}, NOTIFY),
])
def test_actions(action, errno_field, expected):
    bpf = seccomp.compile_filter(profile_with(rule(["mkdir"], action, **errno_field)))
    assert run_bpf(bpf, NR["mkdir"]) == expected
    assert run_bpf(bpf, NR["getpid"]) == ALLOW


def test_argument_conditions_compare_all_64_bits():
    bpf = seccomp.compile_filter(profile_with(
        rule(["personality"], errnoRet=13, args=[{"index": 0, "value": 0xFFFFFFFF, "op": "SCMP_CMP_EQ"}])))
    assert run_bpf(bpf, NR["personality"], args=(0xFFFFFFFF,)) == errno_ret(13)
    assert run_bpf(bpf, NR["personality"], args=(0,)) == ALLOW
    assert run_bpf(bpf, NR["personality"], args=(0x1_FFFFFFFF,)) == ALLOW


def test_conditions_on_different_arguments_are_anded():
    bpf = seccomp.compile_filter(profile_with(rule(["personality"], args=[
        {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}, {"index": 1, "value": 5, "op": "SCMP_CMP_GE"}])))
    assert run_bpf(bpf, NR["personality"], args=(1, 5)) == errno_ret(1)
    assert run_bpf(bpf, NR["personality"], args=(1, 4)) == ALLOW
    assert run_bpf(bpf, NR["personality"], args=(2, 5)) == ALLOW


def test_a_repeated_argument_index_makes_separate_rules_like_runc():
    """libseccomp compares each argument once per rule, so runc adds every condition as its
    own rule when an index repeats: the conditions are then ORed, all of them."""
    bpf = seccomp.compile_filter(profile_with(rule(["personality"], args=[
        {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}, {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"},
        {"index": 1, "value": 9, "op": "SCMP_CMP_EQ"}])))
    assert [run_bpf(bpf, NR["personality"], args=a) for a in ((1, 0), (2, 0), (3, 9), (3, 0))] == \
        [errno_ret(1), errno_ret(1), errno_ret(1), ALLOW]


def test_masked_eq_takes_the_mask_from_value_and_the_result_from_value_two():
    bpf = seccomp.compile_filter(profile_with(rule(["personality"], args=[
        {"index": 0, "value": 0xFF00, "valueTwo": 0x1200, "op": "SCMP_CMP_MASKED_EQ"}])))
    assert run_bpf(bpf, NR["personality"], args=(0x1234,)) == errno_ret(1)
    assert run_bpf(bpf, NR["personality"], args=(0x1334,)) == ALLOW


@pytest.mark.parametrize(("nr", "args", "expected"), [
    (NR["read"], (), ALLOW),
    (NR["getpid"], (), ALLOW),
    (NR["keyctl"], (), errno_ret(1)),  # left out of the profile: its default EPERM
    (NR["unshare"], (), errno_ret(1)),  # needs CAP_SYS_ADMIN in moby's profile
    (NR["clone"], (0x11,), ALLOW),  # SIGCHLD: a plain fork
    (NR["clone"], (0x20000,), errno_ret(1)),  # CLONE_NEWNS
    (NR["clone3"], (), errno_ret(38)),  # so that libc falls back to clone
    (NR["personality"], (0xFFFFFFFF,), ALLOW),
    (NR["personality"], (0x0400000,), errno_ret(1)),
    (449, (), ALLOW),  # futex_waitv, the newest call the profile names
    (452, (), errno_ret(38)),  # fchmodat2 and anything newer: ENOSYS from the prefix
    (1000, (), errno_ret(38)),
])
def test_docker_default_profile_on_x86_64(docker_bpf, nr, args, expected):
    assert run_bpf(docker_bpf, nr, X86_64, args) == expected


def test_docker_default_profile_on_the_other_x86_abis(docker_bpf):
    assert run_bpf(docker_bpf, 20, I386) == ALLOW  # getpid on i386
    assert run_bpf(docker_bpf, 288, I386) == errno_ret(1)  # keyctl on i386
    assert run_bpf(docker_bpf, 460, I386) == errno_ret(38)
    assert run_bpf(docker_bpf, X32_BIT | 0, X86_64) == ALLOW  # read on x32
    assert run_bpf(docker_bpf, X32_BIT | 1000, X86_64) == errno_ret(38)
    assert run_bpf(docker_bpf, NR["getpid"], AARCH64) == KILL_THREAD  # not in the filter: bad-arch action


def test_no_enosys_prefix_when_the_default_lets_calls_through():
    for default in ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG"):
        bpf = seccomp.compile_filter(profile_with(rule(["mkdir"], "SCMP_ACT_KILL_PROCESS"), default=default))
        assert run_bpf(bpf, 1000) == (ALLOW if default == "SCMP_ACT_ALLOW" else LOG)
    enosys_default = profile_with(rule(["read"], "SCMP_ACT_ALLOW"), default="SCMP_ACT_ERRNO", defaultErrnoRet=38)
    assert run_bpf(seccomp.compile_filter(enosys_default), 1000) == errno_ret(38)


def test_x32_calls_stay_with_the_bad_arch_action_when_x32_is_not_in_the_filter():
    bpf = seccomp.compile_filter(profile_with(rule(["read"], "SCMP_ACT_ALLOW"), default="SCMP_ACT_ERRNO"))
    assert run_bpf(bpf, NR["read"]) == ALLOW
    assert run_bpf(bpf, 1000) == errno_ret(38)
    assert run_bpf(bpf, X32_BIT | 1000) == KILL_THREAD


def test_enosys_prefix_for_s390_answers_the_multiplexer_call():
    """Unknown calls reach seccomp as number 0 on s390(x) (runc). libseccomp will not mix
    byte orders in one filter, so the section is checked on its own, before a stub filter."""
    s390x = 0x80000016
    prefix = seccomp._assemble({s390x: seccomp._arch_section({s390x: 100})})
    program = prefix + struct.pack("=HBBI", 0x06, 0, 0, ALLOW)
    assert [run_bpf(program, nr, s390x) for nr in (0, 5, 100, 101)] == \
        [errno_ret(38), ALLOW, ALLOW, errno_ret(38)]
    assert run_bpf(program, 0, X86_64) == ALLOW


def test_architectures_libseccomp_cannot_mix_are_named():
    with pytest.raises(seccomp.SeccompError, match=r"architectures\[1\]: SCMP_ARCH_S390X cannot share a filter"):
        seccomp.compile_filter(profile_with(architectures=["SCMP_ARCH_X86", "SCMP_ARCH_S390X"]))


# ---------------------------------------------------------------------------------------------------
# Cache


def test_cache_key_is_stable(docker_profile):
    key = seccomp.cache_key(docker_profile)
    assert len(key) == 64 and set(key) <= set("0123456789abcdef")
    reordered = dict(reversed(list(copy.deepcopy(docker_profile).items())))
    reordered["syscalls"] = [dict(reversed(list(r.items()))) for r in reordered["syscalls"]]
    assert seccomp.cache_key(reordered) == key
    # Load-time fields do not change the program, so they share its entry.
    assert seccomp.cache_key({**docker_profile, "flags": [], "listenerPath": "/x"}) == key
    # Another process, another hash seed: the same key.
    script = ("import json, sys; from orlop.linux import seccomp; "
              "print(seccomp.cache_key(json.load(sys.stdin)))")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", script], input=json.dumps(docker_profile), env=env,
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == key


def test_cache_key_follows_what_decides_the_program(docker_profile, monkeypatch):
    key = seccomp.cache_key(docker_profile)
    changed_rule = copy.deepcopy(docker_profile)
    changed_rule["syscalls"][0]["names"].remove("mkdir")
    assert seccomp.cache_key(changed_rule) != key
    assert seccomp.cache_key({**docker_profile, "defaultErrnoRet": 38}) != key
    assert seccomp.cache_key({**docker_profile, "architectures": ["SCMP_ARCH_X86_64"]}) != key
    monkeypatch.setattr(seccomp, "library_version", lambda: "2.6.0")
    assert seccomp.cache_key(docker_profile) != key


def test_cache_compiles_once_and_writes_atomically(docker_profile, docker_bpf, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    assert seccomp.compiled(docker_profile, str(cache)) == docker_bpf
    assert [p.name for p in cache.iterdir()] == [seccomp.cache_key(docker_profile) + ".bpf"]
    assert oct(cache.stat().st_mode & 0o777) == "0o700"

    def no_compiling(profile):
        raise AssertionError("compiled again despite the cache")
    monkeypatch.setattr(seccomp, "_compile", no_compiling)
    assert seccomp.compiled(docker_profile, str(cache)) == docker_bpf


def test_a_damaged_cache_entry_is_compiled_again(docker_profile, docker_bpf, tmp_path):
    entry = tmp_path / (seccomp.cache_key(docker_profile) + ".bpf")
    for damage in (b"", docker_bpf[:-3]):
        entry.write_bytes(damage)
        assert seccomp.compiled(docker_profile, str(tmp_path)) == docker_bpf
        assert entry.read_bytes() == docker_bpf
    assert len(list(tmp_path.iterdir())) == 1, "no temporary file is left behind"


def test_an_unwritable_cache_only_costs_a_compilation(docker_profile, docker_bpf, tmp_path):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    assert seccomp.compiled(docker_profile, str(not_a_dir)) == docker_bpf


def test_a_cached_program_does_not_skip_validation(docker_profile, tmp_path):
    seccomp.compiled(docker_profile, str(tmp_path))
    with pytest.raises(seccomp.SeccompError, match="listenerMetadata"):
        seccomp.compiled({**docker_profile, "listenerMetadata": "x"}, str(tmp_path))


# ---------------------------------------------------------------------------------------------------
# Loading: only what is refused before the syscall is made (the kernel tests are in integration/).


def test_load_filter_refuses_unknown_flags_and_partial_programs(docker_bpf):
    with pytest.raises(seccomp.SeccompError, match=r'flags\[1\]: unknown seccomp flag "SECCOMP_FILTER_FLAG_X"'):
        seccomp.load_filter(docker_bpf, ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_X"])
    with pytest.raises(seccomp.SeccompError, match="12 bytes is not a whole number of instructions"):
        seccomp.load_filter(docker_bpf[:12])


def test_flags_default_to_spec_allow_like_runc_and_crun():
    assert seccomp.profile_flags({"defaultAction": "SCMP_ACT_ALLOW"}) == ["SECCOMP_FILTER_FLAG_SPEC_ALLOW"]
    assert seccomp.profile_flags({"defaultAction": "SCMP_ACT_ALLOW", "flags": []}) == []
    assert seccomp.profile_flags({"flags": ["SECCOMP_FILTER_FLAG_LOG"]}) == ["SECCOMP_FILTER_FLAG_LOG"]


def test_uses_notify():
    assert seccomp.uses_notify(profile_with(rule(["mkdir"], "SCMP_ACT_NOTIFY")))
    assert not seccomp.uses_notify(VALID)
