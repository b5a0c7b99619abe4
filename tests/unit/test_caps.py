"""Capability names, masks and /proc/<pid>/status parsing (no root needed)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from orlop.linux import caps

KERNEL_HEADER = "/usr/include/linux/capability.h"

# A real status excerpt: a process of uid 1000 with ambient CAP_NET_BIND_SERVICE.
STATUS_SAMPLE = """\
Name:\tcat
Umask:\t0022
State:\tR (running)
Uid:\t1000\t1000\t1000\t1000
Gid:\t1000\t1000\t1000\t1000
Groups:\t5 27
CapInh:\t0000000000000420
CapPrm:\t0000000000000400
CapEff:\t0000000000000400
CapBnd:\t00000000000024a1
CapAmb:\t0000000000000400
NoNewPrivs:\t0
Seccomp:\t0
"""


def test_names_cover_every_capability_through_checkpoint_restore():
    assert sorted(caps.CAP_NAMES.values()) == list(range(41))
    assert caps.CAP_NAMES["CAP_CHECKPOINT_RESTORE"] == 40
    assert all(name.startswith("CAP_") and name.isupper() for name in caps.CAP_NAMES)


@pytest.mark.skipif(not os.path.exists(KERNEL_HEADER), reason="no kernel headers")
def test_numbers_match_the_kernel_header():
    with open(KERNEL_HEADER) as f:
        defined = {m[1]: int(m[2]) for m in re.finditer(r"^#define\s+(CAP_[A-Z_]+)\s+(\d+)\s*$", f.read(), re.M)}
    assert {name: number for name, number in defined.items() if number <= 40} == caps.CAP_NAMES


def test_parse_caps_builds_a_mask():
    assert caps.parse_caps([]) == 0
    assert caps.parse_caps(["CAP_CHOWN"]) == 1
    assert caps.parse_caps(["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_KILL"]) == 1 << 5 | 1 << 10
    assert caps.parse_caps(["CAP_CHECKPOINT_RESTORE"]) == 1 << 40
    assert caps.parse_caps(list(caps.CAP_NAMES)) == (1 << 41) - 1


@pytest.mark.parametrize(("name", "message"), [
    ("CAP_NOT_A_THING", "unknown capability 'CAP_NOT_A_THING'"),
    ("", "unknown capability ''"),
    # runc ignores names not spelled as in capabilities(7); we refuse them and say how to write them
    ("chown", "write it as 'CAP_CHOWN'"),
    ("NET_ADMIN", "write it as 'CAP_NET_ADMIN'"),
    ("cap_sys_admin", "write it as 'CAP_SYS_ADMIN'"),
])
def test_parse_caps_names_an_unknown_capability(name, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        caps.parse_caps(["CAP_CHOWN", name])


def test_cap_names_inverts_parse_caps():
    names = ["CAP_CHOWN", "CAP_SETUID", "CAP_SYS_ADMIN", "CAP_BPF"]
    assert caps.cap_names(caps.parse_caps(names)) == names
    assert caps.cap_names(1 << 62) == []  # a bit no kernel names yet


def test_status_text_is_parsed():
    assert caps.parse_status_caps(STATUS_SAMPLE) == {
        "CapInh": caps.parse_caps(["CAP_KILL", "CAP_NET_BIND_SERVICE"]),
        "CapPrm": caps.parse_caps(["CAP_NET_BIND_SERVICE"]),
        "CapEff": caps.parse_caps(["CAP_NET_BIND_SERVICE"]),
        "CapBnd": caps.parse_caps(["CAP_CHOWN", "CAP_KILL", "CAP_SETUID", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW"]),
        "CapAmb": caps.parse_caps(["CAP_NET_BIND_SERVICE"]),
    }


def test_status_of_an_old_kernel_without_ambient():
    text = STATUS_SAMPLE.replace("CapAmb:\t0000000000000400\n", "")
    assert set(caps.parse_status_caps(text)) == {"CapInh", "CapPrm", "CapEff", "CapBnd"}


def test_status_of_a_live_process_matches_this_process():
    mine = caps.read_status_caps()
    assert set(mine) == set(caps.STATUS_FIELDS)
    assert caps.read_status_caps(os.getpid()) == mine
    assert caps.host_capabilities() == mine["CapBnd"]


def test_status_of_a_missing_process_is_an_oserror():
    with pytest.raises(FileNotFoundError):
        caps.read_status_caps(2**22 + 1)  # above pid_max's ceiling


def test_last_cap_agrees_with_the_kernel_both_ways():
    with open("/proc/sys/kernel/cap_last_cap") as f:
        expected = int(f.read())
    assert caps.last_cap() == expected
    assert caps._probe_last_cap() == expected  # the fallback used where /proc is not mounted


def test_import_stays_lean():
    """caps and pty run in a container's init on the start-up path: no heavy modules."""
    heavy = ["re", "json", "enum", "dataclasses", "typing", "signal", "socket", "pathlib", "subprocess",
             "logging", "array", "collections"]
    code = ("import sys; import orlop.linux.caps, orlop.linux.pty; "
            f"print(sorted(set({heavy!r}) & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.stdout.strip() == "[]"
