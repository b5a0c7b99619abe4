"""Process capabilities: names, the five sets, and switching user while keeping
exactly the configured capabilities, no more and no fewer.

The order follows runc's finalizeNamespace: shrink the bounding set while still
privileged (PR_CAPBSET_DROP needs CAP_SETPCAP), keep the permitted set across
the uid change with PR_SET_KEEPCAPS, switch groups then user, set
effective/permitted/inheritable with capset(2), and raise the ambient ones last
(the kernel wants each ambient cap in both permitted and inheritable).

capset(2) changes the calling thread only: call this from a single-threaded
process, as a container's init is right before execve.
"""

from __future__ import annotations

import ctypes
import os

CAP_NAMES: dict[str, int] = {
    "CAP_CHOWN": 0,
    "CAP_DAC_OVERRIDE": 1,
    "CAP_DAC_READ_SEARCH": 2,
    "CAP_FOWNER": 3,
    "CAP_FSETID": 4,
    "CAP_KILL": 5,
    "CAP_SETGID": 6,
    "CAP_SETUID": 7,
    "CAP_SETPCAP": 8,
    "CAP_LINUX_IMMUTABLE": 9,
    "CAP_NET_BIND_SERVICE": 10,
    "CAP_NET_BROADCAST": 11,
    "CAP_NET_ADMIN": 12,
    "CAP_NET_RAW": 13,
    "CAP_IPC_LOCK": 14,
    "CAP_IPC_OWNER": 15,
    "CAP_SYS_MODULE": 16,
    "CAP_SYS_RAWIO": 17,
    "CAP_SYS_CHROOT": 18,
    "CAP_SYS_PTRACE": 19,
    "CAP_SYS_PACCT": 20,
    "CAP_SYS_ADMIN": 21,
    "CAP_SYS_BOOT": 22,
    "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24,
    "CAP_SYS_TIME": 25,
    "CAP_SYS_TTY_CONFIG": 26,
    "CAP_MKNOD": 27,
    "CAP_LEASE": 28,
    "CAP_AUDIT_WRITE": 29,
    "CAP_AUDIT_CONTROL": 30,
    "CAP_SETFCAP": 31,
    "CAP_MAC_OVERRIDE": 32,
    "CAP_MAC_ADMIN": 33,
    "CAP_SYSLOG": 34,
    "CAP_WAKE_ALARM": 35,
    "CAP_BLOCK_SUSPEND": 36,
    "CAP_AUDIT_READ": 37,
    "CAP_PERFMON": 38,
    "CAP_BPF": 39,
    "CAP_CHECKPOINT_RESTORE": 40,
}

# The /proc/<pid>/status fields, in the order the kernel prints them.
STATUS_FIELDS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")

# <linux/prctl.h>, <linux/capability.h>, <errno.h>
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_EPERM = 1
_EINVAL = 22
_HIGHEST_POSSIBLE_CAP = 63  # the sets are 64-bit

_libc = ctypes.CDLL(None, use_errno=True)
_libc.prctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong)


class _Header(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _Data(ctypes.Structure):
    _fields_ = (("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32))


def _error(err: int, what: str) -> OSError:
    return OSError(err, f"{what}: {os.strerror(err)}")


def _prctl(option: int, arg2: int, arg3: int, what: str) -> int:
    result = _libc.prctl(option, arg2, arg3, 0, 0)
    if result < 0:
        raise _error(ctypes.get_errno(), what)
    return result


def _in_bounding_set(cap: int) -> bool | None:
    """True/False, or None when the kernel does not know `cap` (EINVAL)."""
    result = _libc.prctl(PR_CAPBSET_READ, cap, 0, 0, 0)
    return None if result < 0 else result == 1


_last_cap: int | None = None


def last_cap() -> int:
    """The highest capability number this kernel knows (cached: it cannot change)."""
    global _last_cap
    if _last_cap is None:
        try:
            with open("/proc/sys/kernel/cap_last_cap", "rb") as f:
                _last_cap = int(f.read())
        except (OSError, ValueError):
            _last_cap = _probe_last_cap()  # no /proc (yet) in this mount namespace
    return _last_cap


def _probe_last_cap() -> int:
    """Find the last cap as libcap does without /proc: PR_CAPBSET_READ fails for unknown ones."""
    cap = max(CAP_NAMES.values())
    if _in_bounding_set(cap) is None:
        while cap > 0 and _in_bounding_set(cap) is None:
            cap -= 1
        return cap
    while cap < _HIGHEST_POSSIBLE_CAP and _in_bounding_set(cap + 1) is not None:
        cap += 1
    return cap


def _known_mask() -> int:
    return (1 << (last_cap() + 1)) - 1


def parse_caps(names: list[str]) -> int:
    """OCI capability names (exactly as capabilities(7) spells them, e.g. CAP_CHOWN) -> a bit mask."""
    mask = 0
    for name in names:
        number = CAP_NAMES.get(name)
        if number is None:
            raise ValueError(_unknown_cap_message(name))
        mask |= 1 << number
    return mask


def _unknown_cap_message(name: str) -> str:
    spelled = name.upper() if name.upper().startswith("CAP_") else "CAP_" + name.upper()
    if spelled in CAP_NAMES:
        return f"unknown capability {name!r}: write it as {spelled!r}"
    return f"unknown capability {name!r} (known: CAP_CHOWN through CAP_CHECKPOINT_RESTORE, see capabilities(7))"


def cap_names(mask: int) -> list[str]:
    """The names of the capabilities in `mask`, lowest number first (unnamed bits are left out)."""
    return [name for name, number in CAP_NAMES.items() if mask >> number & 1]


def _name(cap: int) -> str:
    return next((name for name, number in CAP_NAMES.items() if number == cap), f"capability {cap}")


def apply_capabilities(bounding: int, effective: int, permitted: int, inheritable: int, ambient: int, *,
                       uid: int, gid: int, additional_gids: list[int]) -> None:
    """Become uid:gid (with additional_gids) holding exactly the given capability sets.

    Capabilities this kernel does not know (above cap_last_cap) are ignored, as runc
    ignores them (it warns). Ambient caps not in both permitted and inheritable are skipped:
    the kernel refuses them, and runc only warns about them.
    """
    known = _known_mask()
    drop_bounding_set(bounding & known)
    _prctl(PR_SET_KEEPCAPS, 1, 0, "prctl(PR_SET_KEEPCAPS)")  # keep permitted across setresuid
    switch_user(uid, gid, additional_gids)
    _prctl(PR_SET_KEEPCAPS, 0, 0, "prctl(PR_SET_KEEPCAPS)")  # so the container's own setuid drops caps
    capset(effective & known, permitted & known, inheritable & known)
    set_ambient(ambient & permitted & inheritable & known)


def drop_bounding_set(keep: int) -> None:
    """Remove from the bounding set every capability not in `keep`.

    Caps already gone are skipped, so this works without CAP_SETPCAP when nothing needs dropping."""
    for cap in range(last_cap() + 1):
        if not keep >> cap & 1 and _in_bounding_set(cap):
            _prctl(PR_CAPBSET_DROP, cap, 0, f"prctl(PR_CAPBSET_DROP, {_name(cap)})")


def switch_user(uid: int, gid: int, additional_gids: list[int]) -> None:
    """setgroups, setresgid, setresuid: groups first, while we may still change them."""
    set_groups(additional_gids)
    for call, what, ident in ((os.setresgid, "setresgid", gid), (os.setresuid, "setresuid", uid)):
        try:
            call(ident, ident, ident)
        except OSError as e:
            raise _error(e.errno, f"{what}({ident})") from None


def set_groups(gids: list[int]) -> None:
    """setgroups(2), except in a user namespace whose setgroups is denied (a rootless
    container): there only an empty list could be asked for, and it already is."""
    try:
        os.setgroups(gids)
    except PermissionError as e:
        if gids or not _setgroups_denied():
            raise _error(e.errno, f"setgroups({gids})") from None


def _setgroups_denied() -> bool:
    try:
        with open("/proc/self/setgroups", "rb") as f:
            return f.read().strip() == b"deny"
    except OSError:
        return False


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """capset(2), version 3: each 64-bit set goes as two 32-bit words, low word first."""
    header = _Header(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_Data * 2)()
    for i in range(2):
        data[i].effective = effective >> (32 * i) & 0xFFFFFFFF
        data[i].permitted = permitted >> (32 * i) & 0xFFFFFFFF
        data[i].inheritable = inheritable >> (32 * i) & 0xFFFFFFFF
    if _libc.capset(ctypes.byref(header), data) < 0:
        err = ctypes.get_errno()
        hint = _capset_hint(effective, permitted, inheritable) if err == _EPERM else ""
        raise OSError(err, f"capset: {os.strerror(err)}{hint}")


def _capset_hint(effective: int, permitted: int, inheritable: int) -> str:
    """Name the usual reasons the kernel refuses a config's sets (only on the error path)."""
    try:
        held = read_status_caps()
    except OSError:
        held = {}
    for extra, why in ((effective & ~permitted, "effective {} not in permitted"),
                       (permitted & ~held.get("CapPrm", permitted), "permitted {} not held by this process"),
                       (inheritable & ~held.get("CapBnd", inheritable), "inheritable {} not in the bounding set")):
        if extra:
            return f" ({why.format(', '.join(cap_names(extra)) or hex(extra))})"
    return ""


def set_ambient(ambient: int) -> None:
    """Make the ambient set exactly `ambient` (each cap must be permitted and inheritable)."""
    if _libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0:
        err = ctypes.get_errno()
        if err == _EINVAL:
            return  # a kernel before 4.3 has no ambient set; runc carries on too
        raise _error(err, "prctl(PR_CAP_AMBIENT_CLEAR_ALL)")
    for cap in range(last_cap() + 1):
        if ambient >> cap & 1:
            _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, f"prctl(PR_CAP_AMBIENT_RAISE, {_name(cap)})")


def parse_status_caps(text: str) -> dict[str, int]:
    """CapInh/CapPrm/CapEff/CapBnd/CapAmb from the text of a /proc/<pid>/status file."""
    result = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key in STATUS_FIELDS:
            result[key] = int(value.strip(), 16)
    return result


def read_status_caps(pid: int | str = "self") -> dict[str, int]:
    """The capability sets of a process, read from /proc/<pid>/status."""
    with open(f"/proc/{pid}/status") as f:
        return parse_status_caps(f.read())


def host_capabilities() -> int:
    """The bounding set of this process: the most a container started from here can hold
    (a --privileged one gets all of it). Hosts and outer containers often lack some caps."""
    return read_status_caps()["CapBnd"]
