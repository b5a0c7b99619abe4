"""Device rules (linux.resources.devices): parsed once, written to cgroup v1's
devices.allow/deny, or compiled into the eBPF program cgroup v2 needs.

v1 semantics are the reference: the rules are applied in order, a rule for every
device ("a *:* rwm") resets the cgroup to allow-all or deny-all, and every other
rule adds or removes an exception. `effective` replays that exactly as the kernel
does (security/device_cgroup.c), so a v2 host enforces the same thing a v1 host does.
"""

from __future__ import annotations

from orlop.linux.cgroups.common import InvalidResource

BLOCK, CHAR, ALL = 1, 2, 3                  # BPF_DEVCG_DEV_BLOCK/CHAR; v1 "a" = both
MKNOD, READ, WRITE = 1, 2, 4                # BPF_DEVCG_ACC_*
ANY = -1                                    # a wildcard major or minor ("*")
_TYPES = {"a": ALL, "b": BLOCK, "c": CHAR}
_ACCESS = {"m": MKNOD, "r": READ, "w": WRITE}


class DeviceRule:
    """One rule for one device type (block or char) or for all of them."""

    __slots__ = ("allow", "type", "major", "minor", "access")

    def __init__(self, allow: bool, type: int, major: int, minor: int, access: int) -> None:
        self.allow = allow
        self.type = type
        self.major = major
        self.minor = minor
        self.access = access

    @property
    def is_everything(self) -> bool:
        return self.type == ALL and self.major == ANY and self.minor == ANY and self.access == 7

    def v1_value(self) -> str:
        """What devices.allow/deny take: "a" or "c 1:3 rwm" (type b or c only)."""
        if self.is_everything:
            return "a"
        kind = "b" if self.type == BLOCK else "c"
        major = "*" if self.major == ANY else str(self.major)
        minor = "*" if self.minor == ANY else str(self.minor)
        return f"{kind} {major}:{minor} {''.join(c for c in 'rwm' if self.access & _ACCESS[c])}"

    def __repr__(self) -> str:
        return f"<{'allow' if self.allow else 'deny'} {self.v1_value()}>"


def parse_rules(rules: object) -> list[DeviceRule]:
    """OCI rules -> DeviceRules; a rule of type "a" that is not for every device is
    split into a block and a char rule (the kernel would read any "a..." as "all")."""
    if not isinstance(rules, list):
        raise InvalidResource("linux.resources.devices: expected a list of rules")
    parsed: list[DeviceRule] = []
    for i, rule in enumerate(rules):
        where = f"linux.resources.devices[{i}]"
        if not isinstance(rule, dict) or not isinstance(rule.get("allow"), bool):
            raise InvalidResource(f"{where}: expected {{\"allow\": true|false, ...}}, got {rule!r}")
        kind = _TYPES.get(rule.get("type") or "a")
        if kind is None:
            raise InvalidResource(f"{where}.type: {rule['type']!r} is not one of a, b, c")
        major, minor = _number(where, "major", rule.get("major")), _number(where, "minor", rule.get("minor"))
        access_text = rule.get("access") or "rwm"
        if not isinstance(access_text, str) or set(access_text) - set(_ACCESS):
            raise InvalidResource(f"{where}.access: {access_text!r} may hold only the letters r, w and m")
        access = sum(bit for letter, bit in _ACCESS.items() if letter in access_text)
        rule_obj = DeviceRule(rule["allow"], kind, major, minor, access)
        if kind == ALL and not rule_obj.is_everything:
            parsed += [DeviceRule(rule["allow"], t, major, minor, access) for t in (BLOCK, CHAR)]
        else:
            parsed.append(rule_obj)
    return parsed


def _number(where: str, name: str, value: object) -> int:
    if value is None:
        return ANY
    if isinstance(value, bool) or not isinstance(value, int) or not ANY <= value < 1 << 31:
        raise InvalidResource(f"{where}.{name}: {value!r} is not a device number (or null for any)")
    return value


def effective(rules: list[DeviceRule]) -> tuple[bool, dict[tuple[int, int, int], int]]:
    """(allow by default?, exceptions {(type, major, minor): access}) after the rules,
    as the v1 kernel keeps them: exceptions of the same device merge their access
    bits, and a rule agreeing with the default removes bits from its exception."""
    default_allow = True  # a new cgroup under an unrestricted parent
    exceptions: dict[tuple[int, int, int], int] = {}
    for rule in rules:
        if rule.is_everything:
            default_allow = rule.allow
            exceptions.clear()
            continue
        key = (rule.type, rule.major, rule.minor)
        if rule.allow == default_allow:
            left = exceptions.get(key, 0) & ~rule.access
            if left:
                exceptions[key] = left
            else:
                exceptions.pop(key, None)
        else:
            exceptions[key] = exceptions.get(key, 0) | rule.access
    return default_allow, exceptions


def is_allowed(default_allow: bool, exceptions: dict[tuple[int, int, int], int],
               kind: int, major: int, minor: int, access: int) -> bool:
    """The kernel's v1 check for one access, the reference the eBPF program must match."""
    for (ex_type, ex_major, ex_minor), ex_access in exceptions.items():
        if not ex_type & kind or ex_major not in (ANY, major) or ex_minor not in (ANY, minor):
            continue
        if default_allow and ex_access & access:
            return False  # a deny exception covering any of the asked access
        if not default_allow and not access & ~ex_access:
            return True   # an allow exception covering all of it
    return default_allow


# --- the eBPF program (BPF_PROG_TYPE_CGROUP_DEVICE) ------------------------------------
# Its context is struct bpf_cgroup_dev_ctx {u32 access_type; u32 major; u32 minor},
# access_type = access << 16 | type. It returns 1 to allow, 0 to deny.

_LDX_W, _ALU32_AND_K, _ALU32_RSH_K, _ALU32_MOV_X = 0x61, 0x54, 0x74, 0xBC
_MOV64_K, _JEQ_K, _JNE_K, _JSET_K, _EXIT = 0xB7, 0x15, 0x55, 0x45, 0x95
_R0, _R1, _TYPE, _ACC, _MAJOR, _MINOR, _TMP = 0, 1, 2, 3, 4, 5, 6


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """struct bpf_insn: u8 code, u8 dst:4 src:4, s16 off, s32 imm (little-endian hosts)."""
    return (bytes((code, dst | src << 4)) + off.to_bytes(2, "little", signed=True)
            + imm.to_bytes(4, "little", signed=True))


def _exception_block(default_allow: bool, kind: int, major: int, minor: int, access: int) -> list[tuple]:
    """(opcode, dst, imm) steps that return the exception's verdict when it matches;
    each jump skips to the end of the block. For the register move, imm is the source."""
    checks: list[tuple] = []
    if kind != ALL:
        checks.append((_JNE_K, _TYPE, kind))
    if major != ANY:
        checks.append((_JNE_K, _MAJOR, major))
    if minor != ANY:
        checks.append((_JNE_K, _MINOR, minor))
    if default_allow:
        # A deny exception matches when the access asked overlaps its bits.
        checks += [(_ALU32_MOV_X, _TMP, _ACC), (_ALU32_AND_K, _TMP, access), (_JEQ_K, _TMP, 0)]
    elif access != 7:
        # An allow exception matches when no asked bit lies outside it.
        checks.append((_JSET_K, _ACC, ~access & 7))
    return checks + [(_MOV64_K, _R0, 0 if default_allow else 1), (_EXIT, 0, 0)]


def bpf_program(default_allow: bool, exceptions: dict[tuple[int, int, int], int]) -> bytes:
    """The device filter for `effective(...)`, as raw instructions."""
    code = [
        _insn(_LDX_W, _TYPE, _R1, 0), _insn(_ALU32_AND_K, _TYPE, imm=0xFFFF),
        _insn(_LDX_W, _ACC, _R1, 0), _insn(_ALU32_RSH_K, _ACC, imm=16),
        _insn(_LDX_W, _MAJOR, _R1, 4),
        _insn(_LDX_W, _MINOR, _R1, 8),
    ]
    for (kind, major, minor), access in exceptions.items():
        block = _exception_block(default_allow, kind, major, minor, access)
        for i, (op, dst, imm) in enumerate(block):
            if op in (_JEQ_K, _JNE_K, _JSET_K):
                code.append(_insn(op, dst, off=len(block) - i - 1, imm=imm))  # skip to the next block
            elif op == _ALU32_MOV_X:
                code.append(_insn(op, dst, src=imm))
            else:
                code.append(_insn(op, dst, imm=imm))
    code += [_insn(_MOV64_K, _R0, imm=1 if default_allow else 0), _insn(_EXIT)]
    return b"".join(code)
