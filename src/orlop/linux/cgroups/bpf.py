"""bpf(2) through ctypes: load a BPF_PROG_TYPE_CGROUP_DEVICE program and attach it
to a cgroup v2 directory, replacing the device filters attached there before.

Imported only when a v2 container has device rules (ctypes costs a few ms).
bpf_attr is built by hand as bytes: each command reads a prefix of that union,
and the kernel wants every byte it knows about but we do not set to be zero.
"""

from __future__ import annotations

import ctypes
import errno
import os

from orlop.linux.cgroups.common import CgroupError

_BPF_PROG_LOAD, _BPF_PROG_ATTACH, _BPF_PROG_DETACH = 5, 8, 9
_BPF_PROG_GET_FD_BY_ID, _BPF_PROG_QUERY = 13, 16
_BPF_PROG_TYPE_CGROUP_DEVICE = 15
_BPF_CGROUP_DEVICE = 6      # attach type
_BPF_F_ALLOW_MULTI = 2      # other programs (systemd's, a parent's) keep working: all must allow
# Little-endian machines only: the instructions and bpf_attr are encoded little-endian.
_SYSCALL_NR = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "ppc64le": 361, "armv7l": 386, "i686": 357}
_LICENSE = b"Apache-2.0\0"   # no GPL-only helpers are called
_LOG_SIZE = 1 << 16

_libc = ctypes.CDLL(None, use_errno=True)


def _u32(value: int) -> bytes:
    return value.to_bytes(4, "little")


def _u64(value: int) -> bytes:
    return value.to_bytes(8, "little")


def _bpf(cmd: int, attr: ctypes.Array) -> int:
    number = _SYSCALL_NR.get(os.uname().machine)
    if number is None:
        raise CgroupError(errno.ENOSYS, f"device rules on cgroup v2: bpf(2) is not wired up for "
                                        f"{os.uname().machine} here")
    result = _libc.syscall(ctypes.c_long(number), ctypes.c_int(cmd), attr, ctypes.c_uint(len(attr)))
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return result


def _load(program: bytes) -> int:
    """BPF_PROG_LOAD; on refusal, load again with the verifier's log for the message."""
    insns = ctypes.create_string_buffer(program, len(program))
    license_buf = ctypes.create_string_buffer(_LICENSE, len(_LICENSE))

    def attr(log: ctypes.Array | None) -> ctypes.Array:
        fields = (_u32(_BPF_PROG_TYPE_CGROUP_DEVICE) + _u32(len(program) // 8)
                  + _u64(ctypes.addressof(insns)) + _u64(ctypes.addressof(license_buf))
                  + _u32(1 if log else 0) + _u32(len(log) if log else 0) + _u64(ctypes.addressof(log) if log else 0)
                  + _u32(0) + _u32(0) + b"orlop_devices\0\0\0" + _u32(0) + _u32(_BPF_CGROUP_DEVICE))
        return ctypes.create_string_buffer(fields, len(fields))

    try:
        return _bpf(_BPF_PROG_LOAD, attr(None))
    except OSError as e:
        log = ctypes.create_string_buffer(_LOG_SIZE)
        try:
            fd = _bpf(_BPF_PROG_LOAD, attr(log))
        except OSError:
            detail = log.value.decode(errors="replace").strip().splitlines()[-1:] or [""]
            raise CgroupError(e.errno, f"loading the device filter (bpf BPF_PROG_LOAD): {e.strerror}"
                                       f"{': ' + detail[0] if detail[0] else ''}") from None
        return fd  # refused once, accepted with a log: a transient failure


def _attached_ids(cgroup_fd: int) -> list[int]:
    """Ids of the device programs attached to this cgroup itself (BPF_PROG_QUERY)."""
    ids = (ctypes.c_uint32 * 64)()
    fields = (_u32(cgroup_fd) + _u32(_BPF_CGROUP_DEVICE) + _u32(0) + _u32(0)
              + _u64(ctypes.addressof(ids)) + _u32(len(ids)) + _u32(0) + _u64(0))
    attr = ctypes.create_string_buffer(fields, len(fields))
    _bpf(_BPF_PROG_QUERY, attr)
    count = int.from_bytes(attr.raw[24:28], "little")
    return list(ids[:min(count, len(ids))])


def _attach_attr(cgroup_fd: int, prog_fd: int, flags: int) -> ctypes.Array:
    fields = _u32(cgroup_fd) + _u32(prog_fd) + _u32(_BPF_CGROUP_DEVICE) + _u32(flags) + _u32(0)
    return ctypes.create_string_buffer(fields, len(fields))


def _detach(cgroup_fd: int, prog_id: int) -> None:
    id_attr = ctypes.create_string_buffer(_u32(prog_id) + _u32(0) + _u32(0), 12)
    try:
        prog_fd = _bpf(_BPF_PROG_GET_FD_BY_ID, id_attr)
    except FileNotFoundError:
        return  # already gone
    try:
        _bpf(_BPF_PROG_DETACH, _attach_attr(cgroup_fd, prog_fd, 0))
    except FileNotFoundError:
        pass
    finally:
        os.close(prog_fd)


def replace_device_filter(cgroup_dir: str, program: bytes) -> None:
    """Attach `program` to `cgroup_dir`, then detach the device programs that were
    there before: the new filter is in force before the old one goes, so there is
    no moment without one (while both are attached, both must allow)."""
    try:
        cgroup_fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise CgroupError(e.errno, f"opening {cgroup_dir} to attach the device filter: {e.strerror}") from None
    try:
        try:
            old = _attached_ids(cgroup_fd)
        except OSError as e:
            raise CgroupError(e.errno, f"listing the device filters of {cgroup_dir} (bpf BPF_PROG_QUERY): "
                                       f"{e.strerror}") from None
        prog_fd = _load(program)
        try:
            _bpf(_BPF_PROG_ATTACH, _attach_attr(cgroup_fd, prog_fd, _BPF_F_ALLOW_MULTI))
        except OSError as e:
            raise CgroupError(e.errno, f"attaching the device filter to {cgroup_dir} (bpf BPF_PROG_ATTACH): "
                                       f"{e.strerror}") from None
        finally:
            os.close(prog_fd)  # the attachment holds the program
        for prog_id in old:
            try:
                _detach(cgroup_fd, prog_id)
            except OSError as e:
                raise CgroupError(e.errno, f"detaching the old device filter {prog_id} from {cgroup_dir}: "
                                           f"{e.strerror}") from None
    finally:
        os.close(cgroup_fd)


def attached_count(cgroup_dir: str) -> int:
    """How many device programs are attached to `cgroup_dir` (for checks and tests)."""
    fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return len(_attached_ids(fd))
    finally:
        os.close(fd)
