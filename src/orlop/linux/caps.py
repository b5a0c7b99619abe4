"""Process capabilities: names, the five sets, and switching user without losing
(or keeping) more than asked.

Order matters and follows runc: drop from the bounding set while still
privileged, keep capabilities across setuid with PR_SET_KEEPCAPS, switch
groups then user, set effective/permitted/inheritable with capset(2), raise
the ambient ones last (ambient needs them in permitted and inheritable).
"""

from __future__ import annotations

import ctypes
import os

CAP_NAMES: dict[str, int] = {
    "CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3, "CAP_FSETID": 4,
    "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8, "CAP_LINUX_IMMUTABLE": 9,
    "CAP_NET_BIND_SERVICE": 10, "CAP_NET_BROADCAST": 11, "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13,
    "CAP_IPC_LOCK": 14, "CAP_IPC_OWNER": 15, "CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17, "CAP_SYS_CHROOT": 18,
    "CAP_SYS_PTRACE": 19, "CAP_SYS_PACCT": 20, "CAP_SYS_ADMIN": 21, "CAP_SYS_BOOT": 22, "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24, "CAP_SYS_TIME": 25, "CAP_SYS_TTY_CONFIG": 26, "CAP_MKNOD": 27, "CAP_LEASE": 28,
    "CAP_AUDIT_WRITE": 29, "CAP_AUDIT_CONTROL": 30, "CAP_SETFCAP": 31, "CAP_MAC_OVERRIDE": 32,
    "CAP_MAC_ADMIN": 33, "CAP_SYSLOG": 34, "CAP_WAKE_ALARM": 35, "CAP_BLOCK_SUSPEND": 36, "CAP_AUDIT_READ": 37,
    "CAP_PERFMON": 38, "CAP_BPF": 39, "CAP_CHECKPOINT_RESTORE": 40,
}

PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_KEEPCAPS = 8
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522

_libc = ctypes.CDLL(None, use_errno=True)
_libc.prctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong)


class _Header(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _Data(ctypes.Structure):
    _fields_ = (("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32))


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def _prctl(option: int, arg2: int = 0, arg3: int = 0, what: str = "prctl") -> int:
    return _check(_libc.prctl(option, arg2, arg3, 0, 0), what)


_last_cap: int | None = None


def last_cap() -> int:
    """The highest capability this kernel knows."""
    global _last_cap
    if _last_cap is None:
        try:
            with open("/proc/sys/kernel/cap_last_cap") as f:
                _last_cap = int(f.read())
        except OSError:
            _last_cap = max(CAP_NAMES.values())
    return _last_cap


def parse_caps(names: list[str]) -> int:
    """Names like CAP_CHOWN -> a bit mask; an unknown name is a ValueError naming it."""
    mask = 0
    for name in names:
        number = CAP_NAMES.get(name.upper() if name.upper().startswith("CAP_") else "CAP_" + name.upper())
        if number is None:
            raise ValueError(f"unknown capability {name!r}")
        mask |= 1 << number
    return mask


def cap_names(mask: int) -> list[str]:
    return [name for name, number in CAP_NAMES.items() if mask >> number & 1]


def apply_capabilities(bounding: int, effective: int, permitted: int, inheritable: int, ambient: int, *,
                       uid: int, gid: int, additional_gids: list[int]) -> None:
    """Become uid:gid (with additional_gids) holding exactly the given capability sets.

    Capabilities the kernel does not know (above cap_last_cap) are ignored, as runc does.
    """
    known = (1 << (last_cap() + 1)) - 1
    for cap in range(last_cap() + 1):
        if not bounding >> cap & 1 and _libc.prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1:
            _prctl(PR_CAPBSET_DROP, cap, what=f"dropping {_name(cap)} from the bounding set")
    _prctl(PR_SET_KEEPCAPS, 1, what="prctl(PR_SET_KEEPCAPS)")
    set_groups(additional_gids)
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    _prctl(PR_SET_KEEPCAPS, 0, what="prctl(PR_SET_KEEPCAPS)")
    capset(effective & known, permitted & known, inheritable & known)
    _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, what="clearing ambient capabilities")
    for cap in range(last_cap() + 1):
        if ambient >> cap & 1:
            # The kernel refuses an ambient cap not in permitted and inheritable; runc skips those.
            if permitted >> cap & 1 and inheritable >> cap & 1:
                _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, what=f"raising ambient {_name(cap)}")


def set_groups(gids: list[int]) -> None:
    """setgroups(2), except in a user namespace whose setgroups is denied (a rootless
    container): there only an empty list could be asked for, and it already is."""
    try:
        os.setgroups(gids)
    except PermissionError:
        if gids:
            raise
        try:
            with open("/proc/self/setgroups") as f:
                if f.read().strip() == "deny":
                    return
        except OSError:
            pass
        raise


def capset(effective: int, permitted: int, inheritable: int) -> None:
    header = _Header(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_Data * 2)()
    for i in range(2):
        data[i].effective = effective >> (32 * i) & 0xFFFFFFFF
        data[i].permitted = permitted >> (32 * i) & 0xFFFFFFFF
        data[i].inheritable = inheritable >> (32 * i) & 0xFFFFFFFF
    _check(_libc.capset(ctypes.byref(header), data), "capset")


def _name(cap: int) -> str:
    return next((name for name, number in CAP_NAMES.items() if number == cap), f"capability {cap}")


def read_status_caps(pid: int | str = "self") -> dict[str, int]:
    """CapInh/CapPrm/CapEff/CapBnd/CapAmb of a process, from /proc/<pid>/status."""
    result = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Cap"):
                key, value = line.split(":", 1)
                result[key] = int(value.strip(), 16)
    return result


def host_capabilities() -> int:
    """The bounding set of this process: what a --privileged container can be given."""
    return read_status_caps()["CapBnd"]
