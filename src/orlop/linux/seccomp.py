"""seccomp filters from the OCI `linux.seccomp` object, built with libseccomp.

The profile is compiled to BPF by libseccomp (ctypes, libseccomp.so.2) *before*
the container's init is forked, and cached by content under the runtime's
state root, so that Docker's default profile (~350 rules) costs one file read
per container start. The init then installs the BPF with seccomp(2) as the
last step before execve (or before dropping privileges when noNewPrivileges is
off, as runc does), so none of the runtime's own calls are filtered.
"""

from __future__ import annotations

import ctypes
import os

_SCMP_ACT_KILL_PROCESS = 0x80000000
_SCMP_ACT_KILL_THREAD = 0x00000000
_SCMP_ACT_TRAP = 0x00030000
_SCMP_ACT_ERRNO = 0x00050000
_SCMP_ACT_TRACE = 0x7FF00000
_SCMP_ACT_LOG = 0x7FFC0000
_SCMP_ACT_ALLOW = 0x7FFF0000
_SCMP_ACT_NOTIFY = 0x7FC00000
_EPERM = 1

ACTIONS = {"SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP", "SCMP_ACT_ERRNO",
           "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY"}
OPERATORS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4, "SCMP_CMP_GE": 5,
             "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
ARCHES = {"SCMP_ARCH_X86": "x86", "SCMP_ARCH_X86_64": "x86_64", "SCMP_ARCH_X32": "x32",
          "SCMP_ARCH_ARM": "arm", "SCMP_ARCH_AARCH64": "aarch64", "SCMP_ARCH_MIPS": "mips",
          "SCMP_ARCH_MIPS64": "mips64", "SCMP_ARCH_MIPS64N32": "mips64n32", "SCMP_ARCH_MIPSEL": "mipsel",
          "SCMP_ARCH_MIPSEL64": "mipsel64", "SCMP_ARCH_MIPSEL64N32": "mipsel64n32", "SCMP_ARCH_PPC": "ppc",
          "SCMP_ARCH_PPC64": "ppc64", "SCMP_ARCH_PPC64LE": "ppc64le", "SCMP_ARCH_S390": "s390",
          "SCMP_ARCH_S390X": "s390x", "SCMP_ARCH_RISCV64": "riscv64"}
# OCI flag -> (libseccomp filter attribute, seccomp(2) flag bit)
FLAGS = {"SECCOMP_FILTER_FLAG_TSYNC": (4, 1), "SECCOMP_FILTER_FLAG_LOG": (6, 2),
         "SECCOMP_FILTER_FLAG_SPEC_ALLOW": (7, 4)}
_SECCOMP_FILTER_FLAG_NEW_LISTENER = 8
_SCMP_FLTATR_CTL_NNP = 3
_SCMP_FLTATR_API_SYSRAWRC = 9
_SECCOMP_SET_MODE_FILTER = 1
_SYS_seccomp = 277 if os.uname().machine == "aarch64" else 317


class SeccompError(ValueError):
    pass


class _ArgCmp(ctypes.Structure):
    _fields_ = (("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64))


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))


_lib = None


def _libseccomp():
    global _lib
    if _lib is None:
        try:
            lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
        except OSError as e:
            raise SeccompError(f"libseccomp is not installed (apt-get install libseccomp2): {e}") from None
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_init.argtypes = (ctypes.c_uint32,)
        lib.seccomp_release.argtypes = (ctypes.c_void_p,)
        lib.seccomp_arch_add.argtypes = (ctypes.c_void_p, ctypes.c_uint32)
        lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
        lib.seccomp_arch_resolve_name.argtypes = (ctypes.c_char_p,)
        lib.seccomp_syscall_resolve_name.argtypes = (ctypes.c_char_p,)
        lib.seccomp_rule_add_array.argtypes = (ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                               ctypes.POINTER(_ArgCmp))
        lib.seccomp_attr_set.argtypes = (ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32)
        lib.seccomp_export_bpf.argtypes = (ctypes.c_void_p, ctypes.c_int)
        _lib = lib
    return _lib


def action_value(name: str, errno_ret: int | None = None, where: str = "action") -> int:
    if name in ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"):
        return _SCMP_ACT_KILL_THREAD
    if name == "SCMP_ACT_KILL_PROCESS":
        return _SCMP_ACT_KILL_PROCESS
    if name == "SCMP_ACT_TRAP":
        return _SCMP_ACT_TRAP
    if name == "SCMP_ACT_ERRNO":
        return _SCMP_ACT_ERRNO | ((_EPERM if errno_ret is None else errno_ret) & 0xFFFF)
    if name == "SCMP_ACT_TRACE":
        return _SCMP_ACT_TRACE | ((_EPERM if errno_ret is None else errno_ret) & 0xFFFF)
    if name == "SCMP_ACT_ALLOW":
        return _SCMP_ACT_ALLOW
    if name == "SCMP_ACT_LOG":
        return _SCMP_ACT_LOG
    if name == "SCMP_ACT_NOTIFY":
        return _SCMP_ACT_NOTIFY
    raise SeccompError(f"{where}: unknown action {name!r} (expected one of {', '.join(sorted(ACTIONS))})")


def validate(profile: dict) -> None:
    """Check the profile's shape and names; SeccompError names the wrong field."""
    if not isinstance(profile, dict):
        raise SeccompError("must be an object")
    action_value(profile.get("defaultAction", ""), None, "defaultAction")
    for i, arch in enumerate(profile.get("architectures") or []):
        if arch not in ARCHES:
            raise SeccompError(f"architectures[{i}]: unknown architecture {arch!r}")
    for i, flag in enumerate(profile.get("flags") or []):
        if flag not in FLAGS:
            raise SeccompError(f"flags[{i}]: unsupported flag {flag!r} (supported: {', '.join(FLAGS)})")
    for i, rule in enumerate(profile.get("syscalls") or []):
        where = f"syscalls[{i}]"
        if not isinstance(rule, dict):
            raise SeccompError(f"{where}: must be an object")
        names = rule.get("names")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
            raise SeccompError(f"{where}.names: must be a non-empty list of syscall names")
        action_value(rule.get("action", ""), rule.get("errnoRet"), f"{where}.action")
        for j, arg in enumerate(rule.get("args") or []):
            if not isinstance(arg, dict) or not isinstance(arg.get("index"), int) or not 0 <= arg["index"] <= 5:
                raise SeccompError(f"{where}.args[{j}].index: must be 0 to 5")
            if arg.get("op") not in OPERATORS:
                raise SeccompError(f"{where}.args[{j}].op: unknown operator {arg.get('op')!r}")


def _check(result: int, what: str) -> None:
    if result < 0:
        raise SeccompError(f"libseccomp: {what}: {os.strerror(-result)}")


def compile_filter(profile: dict) -> bytes:
    """The BPF program for `profile` on this machine's architectures, as libseccomp builds it."""
    lib = _libseccomp()
    default = action_value(profile["defaultAction"], profile.get("defaultErrnoRet"), "defaultAction")
    ctx = lib.seccomp_init(default)
    if not ctx:
        raise SeccompError("libseccomp: seccomp_init failed")
    try:
        lib.seccomp_attr_set(ctx, _SCMP_FLTATR_API_SYSRAWRC, 1)  # real errnos from libseccomp
        _check(lib.seccomp_attr_set(ctx, _SCMP_FLTATR_CTL_NNP, 0), "disabling its own no_new_privs")
        for arch in profile.get("architectures") or []:
            token = lib.seccomp_arch_resolve_name(ARCHES[arch].encode())
            result = lib.seccomp_arch_add(ctx, token)
            if result < 0 and -result != 17:  # EEXIST: the native arch is always there
                _check(result, f"adding architecture {arch}")
        for rule in profile.get("syscalls") or []:
            _add_rule(lib, ctx, rule, default)
        return _export(lib, ctx)
    finally:
        lib.seccomp_release(ctx)


def _add_rule(lib, ctx, rule: dict, default: int) -> None:
    action = action_value(rule["action"], rule.get("errnoRet"))
    if action == default:
        return  # libseccomp refuses rules that repeat the default action; they change nothing
    conditions = [(a["index"], OPERATORS[a["op"]], a.get("value", 0), a.get("valueTwo", 0))
                  for a in rule.get("args") or []]
    indexes = [c[0] for c in conditions]
    # libseccomp cannot AND two conditions on one argument: like runc, make them separate rules.
    groups = [[c] for c in conditions] if len(set(indexes)) < len(indexes) else [conditions]
    for name in rule["names"]:
        number = lib.seccomp_syscall_resolve_name(name.encode())
        if number == -1:  # __NR_SCMP_ERROR: unknown to this libseccomp, skipped as runc does
            continue
        for group in groups:
            array = (_ArgCmp * max(len(group), 1))(*[_ArgCmp(*c) for c in group])
            _check(lib.seccomp_rule_add_array(ctx, action, number, len(group), array), f"rule for {name}")


def _export(lib, ctx) -> bytes:
    read_fd, write_fd = os.pipe()
    try:
        # Docker's profile is a few KiB of BPF; a pipe's 64 KiB buffer holds it.
        _check(lib.seccomp_export_bpf(ctx, write_fd), "exporting the BPF program")
        os.close(write_fd)
        write_fd = -1
        chunks = []
        while chunk := os.read(read_fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)


def _cache_key(profile: dict) -> str:
    try:
        from _sha256 import sha256  # the C module directly: hashlib costs ~2 ms to import
    except ImportError:
        from hashlib import sha256
    from orlop import fastjson

    return sha256(f"{os.uname().machine}\0{fastjson.dumps(profile)}".encode()).hexdigest()


def compiled(profile: dict, cache_dir: str | None = None) -> bytes:
    """compile_filter, through a cache of BPF programs keyed by the profile's content."""
    if not cache_dir:
        return compile_filter(profile)
    path = os.path.join(cache_dir, _cache_key(profile) + ".bpf")
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        pass
    bpf = compile_filter(profile)
    os.makedirs(cache_dir, 0o700, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(bpf)
    os.rename(tmp, path)
    return bpf


def load_filter(bpf: bytes, flags: list[str] | None = None, notify: bool = False) -> int | None:
    """Install a BPF program on the calling thread with seccomp(2); returns the notify
    listener fd when `notify`."""
    libc = ctypes.CDLL(None, use_errno=True)
    bits = sum(FLAGS[f][1] for f in flags or [])
    if notify:
        bits |= _SECCOMP_FILTER_FLAG_NEW_LISTENER
    program = ctypes.create_string_buffer(bpf, len(bpf))
    fprog = _SockFprog(len(bpf) // 8, ctypes.cast(program, ctypes.c_void_p))
    libc.syscall.restype = ctypes.c_long
    result = libc.syscall(_SYS_seccomp, _SECCOMP_SET_MODE_FILTER, ctypes.c_uint(bits), ctypes.byref(fprog))
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"loading the seccomp filter: {os.strerror(err)}")
    return result if notify else None


def uses_notify(profile: dict) -> bool:
    return profile.get("defaultAction") == "SCMP_ACT_NOTIFY" or any(
        rule.get("action") == "SCMP_ACT_NOTIFY" for rule in profile.get("syscalls") or [])
