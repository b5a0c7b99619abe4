"""seccomp profile validation and compilation (libseccomp, no root needed)."""

from __future__ import annotations

import os

import pytest
from seccomp_profiles import DOCKER_PROFILE, docker_default_profile

from orlop.linux import seccomp


@pytest.mark.parametrize(("profile", "message"), [
    ({"defaultAction": "SCMP_ACT_NOPE"}, "defaultAction: unknown action"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]}, "architectures[0]"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_BOGUS"]}, "flags[0]"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [], "action": "SCMP_ACT_ERRNO"}]},
     "syscalls[0].names"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "BAD"}]},
     "syscalls[0].action"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 9, "value": 1, "op": "SCMP_CMP_EQ"}]}]},
     "syscalls[0].args[0].index"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_XX"}]}]},
     "syscalls[0].args[0].op"),
])
def test_validation_names_the_field(profile, message):
    with pytest.raises(seccomp.SeccompError, match=message.replace("[", r"\[").replace("]", r"\]")):
        seccomp.validate(profile)


def test_unknown_syscall_names_are_skipped():
    bpf = seccomp.compile_filter({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["no_such_syscall_ever", "mkdir"], "action": "SCMP_ACT_ERRNO"}]})
    assert len(bpf) % 8 == 0 and len(bpf) > 0


def test_rule_equal_to_default_action_is_dropped():
    plain = seccomp.compile_filter({"defaultAction": "SCMP_ACT_ALLOW"})
    same = seccomp.compile_filter({"defaultAction": "SCMP_ACT_ALLOW",
                                   "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]})
    assert plain == same


@pytest.mark.skipif(not os.path.exists(DOCKER_PROFILE), reason="scripts/setup fetches Docker's profile")
def test_docker_default_profile_compiles_and_is_cached(tmp_path):
    profile = docker_default_profile()
    seccomp.validate(profile)
    bpf = seccomp.compiled(profile, str(tmp_path))
    assert len(bpf) > 1000
    cached = list(tmp_path.iterdir())
    assert len(cached) == 1 and cached[0].read_bytes() == bpf
    assert seccomp.compiled(profile, str(tmp_path)) == bpf
    other = dict(profile, defaultErrnoRet=38)
    seccomp.compiled(other, str(tmp_path))
    assert len(list(tmp_path.iterdir())) == 2, "a different profile gets its own cache entry"
