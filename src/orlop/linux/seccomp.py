"""seccomp filters from the OCI `linux.seccomp` object, compiled by libseccomp.

libseccomp (libseccomp.so.2, through ctypes) turns the profile into a classic BPF
program, and orlop installs that program itself with seccomp(2). So the program
can be compiled before the container's init is forked, cached by content under
the runtime's state root (crun's idea: Docker's default profile then costs one
file read per container), and installed as the init's last step before execve
without calling into libseccomp again.

As runc's patchbpf does, the program starts with a prefix that answers ENOSYS to
syscalls newer than the newest one the profile names: libc then falls back to an
older call instead of failing with the profile's default EPERM.

Only ctypes, errno, os and struct are imported (ctypes here, not lazily: the
init imports this module before pivot_root, after which no module file can be
found); this module is on the runtime's start path.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct


class SeccompError(ValueError):
    """A profile that cannot be turned into a filter; the message names the field."""


# <seccomp.h> actions. ERRNO and TRACE carry 16 bits of data (the errno, the tracer's message).
_ACTIONS = {
    "SCMP_ACT_KILL": 0x00000000,  # libseccomp's old name for KILL_THREAD
    "SCMP_ACT_KILL_THREAD": 0x00000000,
    "SCMP_ACT_KILL_PROCESS": 0x80000000,
    "SCMP_ACT_TRAP": 0x00030000,
    "SCMP_ACT_ERRNO": 0x00050000,
    "SCMP_ACT_TRACE": 0x7FF00000,
    "SCMP_ACT_LOG": 0x7FFC0000,
    "SCMP_ACT_ALLOW": 0x7FFF0000,
    "SCMP_ACT_NOTIFY": 0x7FC00000,
}
_ERRNO_LIMITS = {"SCMP_ACT_ERRNO": 4095, "SCMP_ACT_TRACE": 0xFFFF}  # the kernel caps errnos at MAX_ERRNO
# Defaults that let unknown calls through anyway need no ENOSYS prefix (runc: a tracer handles ENOSYS itself).
_PERMISSIVE = ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE")
# The runtime calls these after installing the filter to hand the listener fd over: notifying them would hang it.
_NOT_NOTIFIABLE = ("write", "sendmsg")

OPERATORS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4, "SCMP_CMP_GE": 5,
             "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
# The runtime-spec's names; libseccomp's are the lowercased suffixes (some need libseccomp >= 2.6).
ARCHES = frozenset("SCMP_ARCH_" + a for a in (
    "NATIVE X86 X86_64 X32 ARM AARCH64 MIPS MIPS64 MIPS64N32 MIPSEL MIPSEL64 MIPSEL64N32 PPC PPC64 PPC64LE "
    "S390 S390X PARISC PARISC64 RISCV64 LOONGARCH64 M68K SH SHEB").split())
# OCI flag -> seccomp(2) flag bit.
FLAGS = {"SECCOMP_FILTER_FLAG_TSYNC": 1, "SECCOMP_FILTER_FLAG_LOG": 2, "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4,
         "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": 32}
_NEW_LISTENER, _TSYNC_ESRCH = 8, 16
_LOAD_FLAGS = {**FLAGS, "SECCOMP_FILTER_FLAG_NEW_LISTENER": _NEW_LISTENER}

_SECCOMP_SET_MODE_FILTER = 1
# seccomp(2)'s number for 64-bit processes (uname -m names the kernel's machine, not the process's ABI).
_SYS_SECCOMP = {"x86_64": 317, "aarch64": 277, "riscv64": 277, "loongarch64": 277, "ppc64le": 358,
                "ppc64": 358, "s390x": 348}
_BPF_MAXINSNS = 4096
_SUN_PATH_MAX = 107
_U64_MAX = (1 << 64) - 1
_CACHE_FORMAT = "orlop-seccomp-1"  # bump when the generated program changes for the same inputs

# libseccomp's filter attributes.
_SCMP_FLTATR_CTL_OPTIMIZE, _SCMP_FLTATR_API_SYSRAWRC = 8, 9
_NR_SCMP_ERROR = -1

# Architecture tokens (AUDIT_ARCH_* values, except libseccomp's made-up one for x32).
_ARCH_X86_64, _ARCH_X32, _ARCH_S390, _ARCH_S390X = 0xC000003E, 0x4000003E, 0x00000016, 0x80000016
_X32_SYSCALL_BIT = 0x40000000

# Classic BPF, as far as the ENOSYS prefix needs it: (code, jt, jf, k).
_LD_ARCH = (0x20, 0, 0, 4)  # ld [4]: seccomp_data.arch
_LD_NR = (0x20, 0, 0, 0)  # ld [0]: seccomp_data.nr
_JEQ, _JGT, _JSET, _JA = 0x15, 0x25, 0x45, 0x05
_RET_ENOSYS = (0x06, 0, 0, _ACTIONS["SCMP_ACT_ERRNO"] | errno.ENOSYS)
_TO_FILTER = "ja to the filter"  # placeholder, resolved once the prefix's length is known


class _ArgCmp(ctypes.Structure):  # struct scmp_arg_cmp
    _fields_ = (("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64))


class _Version(ctypes.Structure):  # struct scmp_version
    _fields_ = (("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint))


class _SockFprog(ctypes.Structure):  # struct sock_fprog
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_char_p))


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_lib = _declared = None


# ---------------------------------------------------------------------------------------------------
# Validation: the profile's shape and names, without loading libseccomp.

def validate(profile: dict) -> None:
    """Check the profile against the runtime-spec; SeccompError names the wrong field."""
    where = "linux.seccomp"
    if not isinstance(profile, dict):
        raise SeccompError(f"{where}: must be an object, not {type(profile).__name__}")
    if _disabled(profile):
        return
    _check_action(profile, "defaultAction", "defaultErrnoRet", where)
    if profile["defaultAction"] == "SCMP_ACT_NOTIFY":
        raise SeccompError(f"{where}.defaultAction: SCMP_ACT_NOTIFY cannot be the default action: the "
                           f"runtime's own calls after the filter is installed would wait for the agent")
    _check_known(profile.get("architectures"), ARCHES, f"{where}.architectures", "architecture")
    _check_known(profile.get("flags"), FLAGS, f"{where}.flags", "flag")
    _check_listener(profile, where)
    for i, rule in enumerate(_list(profile.get("syscalls"), f"{where}.syscalls")):
        _check_rule(rule, f"{where}.syscalls[{i}]")


def _disabled(profile: dict) -> bool:
    # runc and dockerd: no default action and no syscalls means no filter at all.
    return not profile.get("defaultAction") and not profile.get("syscalls")


def _show(value: object) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def _unknown(where: str, what: str, value: object, known) -> SeccompError:
    expected = f"expected one of {', '.join(sorted(known))}"
    if value is None:
        return SeccompError(f"{where}: missing; {expected}")
    return SeccompError(f"{where}: unknown {what} {_show(value)} ({expected})")


def _list(value: object, where: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise SeccompError(f"{where}: must be a list, not {type(value).__name__}")
    return value


def _check_uint(value: object, where: str, maximum: int) -> None:
    if type(value) is not int or not 0 <= value <= maximum:  # bool is an int: refuse it too
        raise SeccompError(f"{where}: must be an integer from 0 to {maximum}, not {_show(value)}")


def _check_action(obj: dict, key: str, errno_key: str, where: str) -> None:
    name = obj.get(key)
    if not isinstance(name, str) or name not in _ACTIONS:
        raise _unknown(f"{where}.{key}", "action", name, _ACTIONS)
    errno_ret = obj.get(errno_key)
    if errno_ret is None:
        return
    if name not in _ERRNO_LIMITS:
        raise SeccompError(f"{where}.{errno_key}: {name} returns no errno (only SCMP_ACT_ERRNO and "
                           f"SCMP_ACT_TRACE take one); remove {errno_key} or change the action")
    _check_uint(errno_ret, f"{where}.{errno_key}", _ERRNO_LIMITS[name])


def _check_known(values: object, known, where: str, what: str) -> None:
    for i, value in enumerate(_list(values, where)):
        if not isinstance(value, str) or value not in known:
            raise _unknown(f"{where}[{i}]", what, value, known)


def _check_listener(profile: dict, where: str) -> None:
    path, metadata = profile.get("listenerPath"), profile.get("listenerMetadata")
    if path is not None:
        if not isinstance(path, str) or not path:
            raise SeccompError(f"{where}.listenerPath: must be the path of a unix socket, not {_show(path)}")
        if len(path.encode()) > _SUN_PATH_MAX:
            raise SeccompError(f"{where}.listenerPath: {len(path.encode())} bytes long, but a unix socket "
                               f"path holds at most {_SUN_PATH_MAX}; use a shorter path")
    if metadata is not None:
        if not isinstance(metadata, str):
            raise SeccompError(f"{where}.listenerMetadata: must be a string, not {_show(metadata)}")
        if path is None:
            raise SeccompError(f"{where}.listenerMetadata: set without listenerPath; the runtime-spec "
                               f"forbids it (the metadata goes to the listener)")


def _check_rule(rule: object, where: str) -> None:
    if not isinstance(rule, dict):
        raise SeccompError(f"{where}: must be an object, not {type(rule).__name__}")
    names = rule.get("names")
    if not isinstance(names, list) or not names:
        raise SeccompError(f"{where}.names: must be a non-empty list of syscall names")
    for j, name in enumerate(names):
        if not isinstance(name, str) or not name:
            raise SeccompError(f"{where}.names[{j}]: must be a syscall name, not {_show(name)}")
    _check_action(rule, "action", "errnoRet", where)
    if rule["action"] == "SCMP_ACT_NOTIFY":
        for name in _NOT_NOTIFIABLE:
            if name in names:
                raise SeccompError(f"{where}.names[{names.index(name)}]: SCMP_ACT_NOTIFY cannot be used for "
                                   f"{name}: the runtime calls it after the filter is installed")
    for k, arg in enumerate(_list(rule.get("args"), f"{where}.args")):
        _check_arg(arg, f"{where}.args[{k}]")


def _check_arg(arg: object, where: str) -> None:
    if not isinstance(arg, dict):
        raise SeccompError(f"{where}: must be an object, not {type(arg).__name__}")
    index = arg.get("index")
    if type(index) is not int or not 0 <= index <= 5:
        raise SeccompError(f"{where}.index: must be a syscall argument number from 0 to 5, not {_show(index)}")
    for key in ("value", "valueTwo"):  # runc takes a missing value as 0
        if arg.get(key) is not None:
            _check_uint(arg[key], f"{where}.{key}", _U64_MAX)
    if not isinstance(arg.get("op"), str) or arg["op"] not in OPERATORS:
        raise _unknown(f"{where}.op", "operator", arg.get("op"), OPERATORS)


def uses_notify(profile: dict) -> bool:
    """Whether the filter hands out a listener fd (SCMP_ACT_NOTIFY in a rule)."""
    return any(rule.get("action") == "SCMP_ACT_NOTIFY" for rule in profile.get("syscalls") or [])


def profile_flags(profile: dict) -> list[str]:
    """The seccomp(2) flags for a profile: its own, or runc's and crun's default when it has
    no `flags` at all (SPEC_ALLOW: no forced speculative-store-bypass mitigation)."""
    flags = profile.get("flags")
    return ["SECCOMP_FILTER_FLAG_SPEC_ALLOW"] if flags is None else list(flags)


# ---------------------------------------------------------------------------------------------------
# Compilation with libseccomp.

def _libseccomp():
    """libseccomp, loaded once; only seccomp_version is declared (the cache key needs no more)."""
    global _lib
    if _lib is None:
        try:
            lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
        except OSError as e:
            raise OSError(errno.ENOENT, f"seccomp needs libseccomp (apt-get install libseccomp2): {e}") from None
        lib.seccomp_version.restype = ctypes.POINTER(_Version)
        lib.seccomp_version.argtypes = ()
        _lib = lib
    return _lib


def _compiler():
    """libseccomp with the prototypes compiling needs (declared on first use: ~0.3 ms)."""
    global _declared
    lib = _libseccomp()
    if _declared is not lib:
        ctx, u32, c_int, name = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_char_p
        for func, restype, argtypes in (
                ("seccomp_init", ctx, (u32,)),
                ("seccomp_release", None, (ctx,)),
                ("seccomp_attr_set", c_int, (ctx, c_int, u32)),
                ("seccomp_arch_native", u32, ()),
                ("seccomp_arch_resolve_name", u32, (name,)),
                ("seccomp_arch_add", c_int, (ctx, u32)),
                ("seccomp_syscall_resolve_name", c_int, (name,)),
                ("seccomp_syscall_resolve_name_arch", c_int, (u32, name)),
                ("seccomp_rule_add_array", c_int, (ctx, u32, c_int, ctypes.c_uint, ctypes.POINTER(_ArgCmp))),
                ("seccomp_export_bpf", c_int, (ctx, c_int))):
            getattr(lib, func).restype = restype
            getattr(lib, func).argtypes = argtypes
        _declared = lib
    return lib


def library_version() -> str:
    """libseccomp's version, e.g. "2.5.4" (part of the cache key: it decides the program)."""
    v = _libseccomp().seccomp_version().contents
    return f"{v.major}.{v.minor}.{v.micro}"


def compile_filter(profile: dict) -> bytes:
    """The BPF program (struct sock_filter[], native byte order) for `profile` on this host's
    architecture and the profile's `architectures`. A profile without defaultAction and
    syscalls means no filter, as in runc: the result is then empty."""
    validate(profile)
    return _compile(profile)


def _compile(profile: dict) -> bytes:
    if _disabled(profile):
        return b""
    lib = _compiler()
    default = _action_value(profile["defaultAction"], profile.get("defaultErrnoRet"))
    rules = profile.get("syscalls") or []
    ctx = lib.seccomp_init(default)
    if not ctx:
        raise OSError(errno.ENOMEM, "libseccomp: seccomp_init failed")
    try:
        # Real errnos from libseccomp rather than its catch-all ECANCELED (libseccomp >= 2.5).
        lib.seccomp_attr_set(ctx, _SCMP_FLTATR_API_SYSRAWRC, 1)
        # TSYNC, LOG, SPEC_ALLOW and NNP are load-time attributes: load_filter passes them to seccomp(2).
        arches = _add_architectures(lib, ctx, profile.get("architectures") or [])
        added = sum(_add_rule(lib, ctx, rule, default, f"linux.seccomp.syscalls[{index}]")
                    for index, rule in enumerate(rules))
        # runc: a binary tree of syscalls runs faster for long lists (and libseccomp <= 2.5.4
        # misbehaves with it and no rules at all).
        if added > 32:
            lib.seccomp_attr_set(ctx, _SCMP_FLTATR_CTL_OPTIMIZE, 2)
        program = _export(lib, ctx)
    finally:
        lib.seccomp_release(ctx)
    if profile["defaultAction"] not in _PERMISSIVE and default != _RET_ENOSYS[3]:
        program = _enosys_prefix(lib, rules, arches) + program
    if len(program) // 8 > _BPF_MAXINSNS:
        raise SeccompError(f"linux.seccomp: the filter has {len(program) // 8} BPF instructions, more than "
                           f"the kernel's limit of {_BPF_MAXINSNS}; merge rules or drop some")
    return program


def _action_value(name: str, errno_ret: int | None) -> int:
    if name in _ERRNO_LIMITS:
        return _ACTIONS[name] | (errno.EPERM if errno_ret is None else errno_ret)  # EPERM by default, as runc
    return _ACTIONS[name]


def _add_architectures(lib, ctx, names: list[str]) -> list[int]:
    """Add the profile's architectures to the filter; returns every token in it, native first."""
    tokens = [lib.seccomp_arch_native()]
    for i, name in enumerate(names):
        token = tokens[0] if name == "SCMP_ARCH_NATIVE" else lib.seccomp_arch_resolve_name(name[10:].lower().encode())
        if not token:
            raise SeccompError(f"linux.seccomp.architectures[{i}]: {name} is not supported by libseccomp "
                               f"{library_version()}")
        result = lib.seccomp_arch_add(ctx, token)
        if result == -errno.EDOM:  # libseccomp keeps one byte order per filter
            raise SeccompError(f"linux.seccomp.architectures[{i}]: {name} cannot share a filter with this "
                               f"host's architecture (another byte order)")
        if result < 0 and result != -errno.EEXIST:  # EEXIST: the native one is always there
            raise OSError(-result, f"libseccomp: adding architecture {name}: {os.strerror(-result)}")
        if token not in tokens:
            tokens.append(token)
    return tokens


def _add_rule(lib, ctx, rule: dict, default: int, where: str) -> int:
    """Add one profile rule to the filter; returns how many libseccomp rules that made."""
    action = _action_value(rule["action"], rule.get("errnoRet"))
    if action == default:
        return 0  # libseccomp refuses a rule that repeats the default action; it would change nothing
    groups = _condition_groups(rule.get("args") or [])
    added = 0
    for name in rule["names"]:
        number = lib.seccomp_syscall_resolve_name(name.encode())
        if number == _NR_SCMP_ERROR:
            continue  # unknown to this libseccomp: skipped, as runc does, so newer profiles still load
        for group in groups:
            result = lib.seccomp_rule_add_array(ctx, action, number, len(group) if group else 0, group)
            if result < 0:
                raise SeccompError(f"{where}: libseccomp refused the rule for {name}: {os.strerror(-result)}")
            added += 1
    return added


def _condition_groups(args: list[dict]) -> list:
    """The argument conditions of one profile rule, as the libseccomp rules to add.

    libseccomp ANDs the conditions of a rule but compares each argument at most once, so
    when an index repeats runc adds every condition as a rule of its own (ORed); we do too.
    """
    conditions = [_ArgCmp(a["index"], OPERATORS[a["op"]], a.get("value") or 0, a.get("valueTwo") or 0)
                  for a in args]
    if not conditions:
        return [None]
    indexes = [a["index"] for a in args]
    groups = [[c] for c in conditions] if len(set(indexes)) < len(indexes) else [conditions]
    return [(_ArgCmp * len(group))(*group) for group in groups]


def _export(lib, ctx) -> bytes:
    # A memfd, not a pipe: libseccomp writes the whole program at once, which could overfill a pipe.
    fd = os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC)
    try:
        result = lib.seccomp_export_bpf(ctx, fd)
        if result < 0:
            raise OSError(-result, f"libseccomp: exporting the BPF program: {os.strerror(-result)}")
        size = os.lseek(fd, 0, os.SEEK_CUR)
        return os.pread(fd, size, 0)
    finally:
        os.close(fd)


def _enosys_prefix(lib, rules: list[dict], arches: list[int]) -> bytes:
    """BPF that returns ENOSYS for syscall numbers above the highest one the profile names on
    each architecture of the filter, then falls through to libseccomp's program (runc's
    patchbpf). Numbers in between that the profile leaves out still get the default action."""
    names = {name.encode() for rule in rules for name in rule["names"]}
    sections: dict[int, dict[int, int]] = {}  # kernel's AUDIT_ARCH -> {libseccomp token: highest nr}
    for token in arches:
        numbers = [n for n in (lib.seccomp_syscall_resolve_name_arch(token, name) for name in names) if n >= 0]
        if numbers:  # negative: multiplexed or missing on that architecture
            audit = _ARCH_X86_64 if token == _ARCH_X32 else token  # x32 calls come as x86_64 + bit 30
            sections.setdefault(audit, {})[token] = max(numbers)
    if not sections:
        return b""
    return _assemble({audit: _arch_section(limits) for audit, limits in sections.items()})


def _arch_section(limits: dict[int, int]) -> list:
    """ld nr; ENOSYS above the limit(s); else jump to libseccomp's program. All jumps are short."""
    x86_64, x32 = limits.get(_ARCH_X86_64), limits.get(_ARCH_X32)
    if x86_64 is not None and x32 is not None:
        tests = [(_JSET, 1, 0, _X32_SYSCALL_BIT), (_JGT, 1, 2, x86_64), (_JGT, 0, 1, x32)]
    elif x86_64 is not None:  # x32 calls are not in the filter: leave them to its bad-arch action
        tests = [(_JSET, 2, 0, _X32_SYSCALL_BIT), (_JGT, 0, 1, x86_64)]
    elif x32 is not None:
        tests = [(_JSET, 0, 2, _X32_SYSCALL_BIT), (_JGT, 0, 1, x32)]
    else:
        ((token, highest),) = limits.items()
        tests = [(_JGT, 0, 1, highest)]
        if token in (_ARCH_S390, _ARCH_S390X):  # calls unknown to the kernel arrive as 0 there (runc)
            tests.insert(0, (_JEQ, 1, 0, 0))
    return [_LD_NR, *tests, _RET_ENOSYS, _TO_FILTER]


def _assemble(sections: dict[int, list]) -> bytes:
    length = 1 + sum(1 + len(body) for body in sections.values())
    program = [_LD_ARCH]
    for audit, body in sections.items():
        program.append((_JEQ, 0, len(body), audit))  # another architecture: skip this section
        for insn in body:
            program.append((_JA, 0, 0, length - len(program) - 1) if insn is _TO_FILTER else insn)
    return b"".join(struct.pack("=HBBI", *insn) for insn in program)


# ---------------------------------------------------------------------------------------------------
# The cache of compiled programs.

def cache_key(profile: dict) -> str:
    """sha256 of what decides the program: the profile's filter fields (in a canonical form),
    libseccomp's version, this machine's architecture and the generator's format."""
    try:
        from _sha256 import sha256  # the C module directly: importing hashlib costs ~2 ms
    except ImportError:
        from hashlib import sha256
    fields = {key: profile.get(key) for key in ("defaultAction", "defaultErrnoRet", "architectures", "syscalls")}
    text = f"{_CACHE_FORMAT}\0{library_version()}\0{os.uname().machine}\0{_canonical(fields)}"
    return sha256(text.encode()).hexdigest()


def _canonical(value: object) -> str:
    # Sorted keys and reprs: stable across runs and key orders, and cheaper than importing json.
    if isinstance(value, dict):
        return "{" + ",".join(f"{key!r}:{_canonical(value[key])}" for key in sorted(value)) + "}"
    if isinstance(value, list):
        return "[" + ",".join(map(_canonical, value)) + "]"
    return repr(value)


def compiled(profile: dict, cache_dir: str | None = None) -> bytes:
    """compile_filter, through cache_dir/<cache_key>.bpf when a cache directory is given."""
    validate(profile)
    if not cache_dir or _disabled(profile):
        return _compile(profile)
    path = os.path.join(cache_dir, cache_key(profile) + ".bpf")
    bpf = _read_cached(path)
    if bpf is None:
        bpf = _compile(profile)
        _write_cached(path, bpf)
    return bpf


def _read_cached(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            bpf = f.read()
    except OSError:  # missing, or a cache that cannot be read: compile
        return None
    return bpf if bpf and len(bpf) % 8 == 0 else None  # a damaged entry is compiled again


def _write_cached(path: str, bpf: bytes) -> None:
    """Write atomically (temporary file, fsync, rename); a cache that cannot be written only
    costs the next container a compilation, so that is not an error."""
    tmp = f"{path}.{os.getpid()}.{id(bpf):x}.tmp"
    try:
        os.makedirs(os.path.dirname(path), 0o700, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, bpf)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass


# ---------------------------------------------------------------------------------------------------
# Installation.

def load_filter(bpf: bytes, flags: list[str] | None = None, notify: bool = False) -> int | None:
    """Install `bpf` on the calling thread (every thread with SECCOMP_FILTER_FLAG_TSYNC) with
    seccomp(2). Returns the notify listener fd (close-on-exec) when `flags` has
    SECCOMP_FILTER_FLAG_NEW_LISTENER or `notify` is true, else None. The caller needs
    CAP_SYS_ADMIN or no_new_privs; an empty program (a disabled profile) installs nothing."""
    if not bpf:
        return None
    if len(bpf) % 8:
        raise SeccompError(f"not a BPF program: {len(bpf)} bytes is not a whole number of instructions")
    bits = _flag_bits(flags or [])
    if notify:
        bits |= _NEW_LISTENER
    if bits & _NEW_LISTENER and bits & FLAGS["SECCOMP_FILTER_FLAG_TSYNC"]:
        bits |= _TSYNC_ESRCH  # the kernel refuses TSYNC with a listener unless failures come as ESRCH
    prog = _SockFprog(len(bpf) // 8, bpf)
    result = _libc.syscall(ctypes.c_long(_seccomp_nr()), ctypes.c_uint(_SECCOMP_SET_MODE_FILTER),
                           ctypes.c_uint(bits), ctypes.byref(prog))
    if result < 0:
        raise _load_error(ctypes.get_errno(), bits)
    if bits & _NEW_LISTENER:
        return result
    if result > 0:  # TSYNC: the id of a thread that could not be switched to the filter
        raise OSError(errno.ESRCH, f"seccomp: thread {result} could not be synchronized (TSYNC)")
    return None


def _flag_bits(flags: list[str]) -> int:
    bits = 0
    for i, flag in enumerate(flags):
        if not isinstance(flag, str) or flag not in _LOAD_FLAGS:
            raise _unknown(f"flags[{i}]", "seccomp flag", flag, _LOAD_FLAGS)
        bits |= _LOAD_FLAGS[flag]
    return bits


def _seccomp_nr() -> int:
    nr = _SYS_SECCOMP.get(os.uname().machine) if ctypes.sizeof(ctypes.c_void_p) == 8 else None
    if nr is None:  # libseccomp knows the others (it must be reachable then: load before pivot_root)
        nr = _compiler().seccomp_syscall_resolve_name(b"seccomp")
    return nr


def _load_error(err: int, bits: int) -> OSError:
    names = "|".join(name for name, bit in (*_LOAD_FLAGS.items(), ("TSYNC_ESRCH", _TSYNC_ESRCH)) if bits & bit)
    hint = {errno.EACCES: " (the caller needs CAP_SYS_ADMIN or no_new_privs)",
            errno.EINVAL: " (a flag this kernel does not know, or a program it refuses)"}.get(err, "")
    return OSError(err, f"seccomp(SECCOMP_SET_MODE_FILTER, {names or 0}): {os.strerror(err)}{hint}")


def apply(profile: dict, cache_dir: str | None = None) -> int | None:
    """Compile (or take from cache_dir) and install the profile's filter on the calling thread.
    Returns the notify listener fd when a rule uses SCMP_ACT_NOTIFY, else None."""
    bpf = compiled(profile, cache_dir)
    flags, notify = profile_flags(profile), uses_notify(profile)
    try:
        return load_filter(bpf, flags, notify)
    except OSError as e:
        if profile.get("flags") is not None or e.errno != errno.EINVAL:
            raise
        return load_filter(bpf, [], notify)  # a kernel without SPEC_ALLOW (< 4.17): runc skips it too
