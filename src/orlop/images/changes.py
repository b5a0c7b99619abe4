"""Dockerfile instructions applied to an image config: `docker import --change` (and
`docker commit --change`). As dockerd, only CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK,
LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME and WORKDIR are accepted; their arguments are
read as the Dockerfile reads them (exec form as JSON, shell form, quotes, escapes, and
$VAR / ${VAR} / ${VAR:-default} / ${VAR:+alt} expanded from the config's Env for ENV,
EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME and WORKDIR).
"""

from __future__ import annotations

import copy
import json
import posixpath
import re
import signal
from collections.abc import Iterable

VALID = ("cmd", "entrypoint", "env", "expose", "healthcheck", "label", "onbuild", "stopsignal", "user",
         "volume", "workdir")
_NAME = re.compile(r"[A-Za-z0-9_]+")
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1, "us": 1e3, "µs": 1e3, "ms": 1e6, "s": 1e9, "m": 60e9, "h": 3600e9}


class ChangeError(ValueError):
    pass


def apply_changes(config: dict, changes: Iterable[str]) -> dict:
    """A copy of the container config `config` ({"Env": [...], "Cmd": [...], ...}) with the
    instructions applied in order."""
    config = copy.deepcopy(config)
    cmd_set = False
    for line in _lines(changes):
        instruction, _, rest = line.partition(" ") if " " in line else line.partition("\t")
        instruction, rest = instruction.lower(), rest.strip()
        if instruction not in VALID:
            raise ChangeError(f"{instruction} is not a valid change command")
        if not rest:
            raise ChangeError(f"{instruction.upper()} requires at least one argument")
        env = _env_map(config)
        if instruction in ("cmd", "entrypoint"):
            config["Cmd" if instruction == "cmd" else "Entrypoint"] = _command(rest)
            if instruction == "cmd":
                cmd_set = True
            elif not cmd_set:
                config.pop("Cmd", None)
        elif instruction in ("env", "label"):
            for key, value in _pairs(instruction, rest, env):
                if instruction == "label":
                    config.setdefault("Labels", {})[key] = value
                else:
                    config["Env"] = [e for e in config.get("Env") or [] if e.split("=", 1)[0] != key]
                    config["Env"].append(f"{key}={value}")
                    env[key] = value
        elif instruction == "expose":
            ports = config.setdefault("ExposedPorts", {})
            for word in _words(rest):
                for port in _ports(expand(word, env)):
                    ports[port] = {}
        elif instruction == "volume":
            volumes = config.setdefault("Volumes", {})
            paths = _json_list(rest)
            for path in paths if paths is not None else [expand(w, env) for w in _words(rest)]:
                if not path.strip():
                    raise ChangeError("VOLUME specified can not be an empty string")
                volumes[path] = {}
        elif instruction == "workdir":
            path = expand(rest, env)
            config["WorkingDir"] = path if path.startswith("/") else posixpath.join("/", config.get("WorkingDir")
                                                                                    or "/", path).rstrip("/") or "/"
        elif instruction == "user":
            config["User"] = expand(rest, env)
        elif instruction == "stopsignal":
            config["StopSignal"] = _signal(expand(rest, env))
        elif instruction == "onbuild":
            trigger = rest.split(None, 1)[0].upper()
            if trigger in ("ONBUILD", "FROM", "MAINTAINER"):
                raise ChangeError(f"{trigger} isn't allowed as an ONBUILD trigger")
            config.setdefault("OnBuild", []).append(rest)
        elif instruction == "healthcheck":
            config["Healthcheck"] = _healthcheck(rest)
    return config


def _lines(changes: Iterable[str]) -> Iterable[str]:
    """The changes as dockerd reads them: joined by newlines into a Dockerfile, so a line
    ending in a backslash goes on; blank lines and comments are skipped."""
    pending = ""
    for line in "\n".join(changes).split("\n"):
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1]
            continue
        yield (pending + stripped).strip()
        pending = ""
    if pending.strip():
        yield pending.strip()


def _env_map(config: dict) -> dict[str, str]:
    return dict(e.split("=", 1) if "=" in e else (e, "") for e in config.get("Env") or [])


def _json_list(text: str) -> list[str] | None:
    if not text.startswith("["):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None


def _command(text: str) -> list[str]:
    """Exec form (a JSON array) or shell form, run by /bin/sh -c."""
    exec_form = _json_list(text)
    return exec_form if exec_form is not None else ["/bin/sh", "-c", text]


def _words(text: str) -> list[str]:
    """Split on blanks outside quotes, keeping quotes and escapes for `expand` (Docker's parseWords)."""
    words, word, quote, escaped = [], "", None, False
    for ch in text:
        if escaped:
            word, escaped = word + ch, False
        elif ch == "\\" and quote != "'":
            word, escaped = word + ch, True
        elif quote:
            word += ch
            if ch == quote:
                quote = None
        elif ch in "'\"":
            word, quote = word + ch, ch
        elif ch.isspace():
            if word:
                words.append(word)
            word = ""
        else:
            word += ch
    if word:
        words.append(word)
    return words


def expand(word: str, env: dict[str, str]) -> str:
    """Quotes and escapes taken off, variables expanded, as Docker's shell lexer does."""
    out, i, quote = [], 0, None
    while i < len(word):
        ch = word[i]
        if quote == "'":
            if ch == "'":
                quote = None
            else:
                out.append(ch)
        elif ch == "\\" and i + 1 < len(word):
            nxt = word[i + 1]
            if quote == '"' and nxt not in '"$\\':
                out.append(ch)
            else:
                out.append(nxt)
                i += 1
        elif ch == "$":
            value, i = _variable(word, i, env)
            out.append(value)
            continue
        elif ch in "'\"" and quote is None:
            quote = ch
        elif ch == '"' and quote == '"':
            quote = None
        else:
            out.append(ch)
        i += 1
    if quote:
        raise ChangeError(f"unexpected end of statement while looking for matching {quote}: {word}")
    return "".join(out)


def _variable(word: str, i: int, env: dict[str, str]) -> tuple[str, int]:
    """The value of the variable at word[i] ("$"), and the index after it."""
    if word.startswith("${", i):
        end = word.find("}", i)
        if end < 0:
            raise ChangeError(f"missing '}}' in {word!r}")
        body = word[i + 2:end]
        match = re.fullmatch(r"([A-Za-z0-9_]+)(?:(:?[-+])(.*))?", body, re.S)
        if not match:
            raise ChangeError(f"bad substitution ${{{body}}} in {word!r}")
        name, operator, alternative = match.groups()
        value = env.get(name)
        if operator in ("-", ":-"):
            unset = value is None or (operator == ":-" and value == "")
            value = expand(alternative, env) if unset else value
        elif operator in ("+", ":+"):
            present = value is not None and (operator == "+" or value != "")
            value = expand(alternative, env) if present else ""
        return value or "", end + 1
    match = _NAME.match(word, i + 1)
    if not match:
        return "$", i + 1
    return env.get(match.group(), ""), match.end()


def _pairs(instruction: str, text: str, env: dict[str, str]) -> list[tuple[str, str]]:
    """ENV/LABEL arguments: key=value words, or the legacy `KEY value with spaces`."""
    words = _words(text)
    if "=" not in words[0]:
        key, _, value = text.partition(" ") if " " in text else text.partition("\t")
        if not value.strip():
            raise ChangeError(f"{instruction.upper()} must have two arguments")
        return [(key, expand(value.strip(), env))]
    pairs = []
    for word in words:
        key, equals, value = word.partition("=")
        if not equals:
            raise ChangeError(f"Syntax error - can't find = in {word!r}. Must be of the form: name=value")
        if not key:
            raise ChangeError(f"{instruction.upper()} names can not be blank")
        pairs.append((expand(key, env), expand(value, env)))
    return pairs


def _ports(spec: str) -> list[str]:
    """"80", "80/udp", "8000-8002/tcp" -> ["80/tcp"], ... (nat.ParsePortSpecs)."""
    port, _, proto = spec.partition("/")
    proto = (proto or "tcp").lower()
    start, _, end = port.partition("-")
    if not start.isdigit() or (end and not end.isdigit()) or int(start) > 65535 or (end and int(end) > 65535):
        raise ChangeError(f"Invalid containerPort: {port}")
    if end and int(end) < int(start):
        raise ChangeError(f"Invalid range specified for the Port: {port}")
    return [f"{p}/{proto}" for p in range(int(start), int(end or start) + 1)]


def _signal(text: str) -> str:
    name = text.upper()
    if text.isdigit() or name in signal.Signals.__members__ or f"SIG{name}" in signal.Signals.__members__ \
            or re.fullmatch(r"(SIG)?RTM(IN|AX)([+-]\d+)?", name):
        return text
    raise ChangeError(f"Invalid signal: {text}")


def _duration(flag: str, text: str) -> int:
    """A Go duration ("30s", "1m30s", "500ms") in nanoseconds."""
    if text == "0":
        return 0
    parts = _DURATION.findall(text)
    if not parts or "".join(a + b for a, b in parts) != text:
        raise ChangeError(f"time: invalid duration \"{text}\" (--{flag})")
    return int(sum(float(number) * _UNITS[unit] for number, unit in parts))


_HEALTH_FLAGS = {"interval": "Interval", "timeout": "Timeout", "start-period": "StartPeriod",
                 "start-interval": "StartInterval", "retries": "Retries"}


def _healthcheck(text: str) -> dict:
    """`[--interval=30s ...] CMD <command>` or `NONE`, as container.HealthConfig."""
    flags, kind, rest = re.fullmatch(r"((?:--\S+\s+)*)(\S*)\s*(.*)", text, re.S).groups()
    options: dict[str, int] = {}
    for flag in flags.split():
        name, _, value = flag[2:].partition("=")
        if name not in _HEALTH_FLAGS:
            raise ChangeError(f"Unknown flag: {name}")
        if name == "retries":
            if not value.isdigit():
                raise ChangeError(f"invalid --retries value {value!r}")
            options["Retries"] = int(value)
            continue
        nanoseconds = _duration(name, value)
        if 0 < nanoseconds < 1_000_000:
            raise ChangeError(f"Interval \"{name}\" cannot be less than 1ms")
        options[_HEALTH_FLAGS[name]] = nanoseconds
    kind = kind.upper()
    if kind == "NONE":
        if rest or options:
            raise ChangeError("HEALTHCHECK NONE takes no arguments")
        return {"Test": ["NONE"]}
    if kind != "CMD":
        raise ChangeError(f"Unknown type \"{kind}\" in HEALTHCHECK (try CMD)" if kind else
                          "Missing command after HEALTHCHECK")
    if not rest:
        raise ChangeError("Missing command after HEALTHCHECK CMD")
    exec_form = _json_list(rest)
    test = ["CMD", *exec_form] if exec_form is not None else ["CMD-SHELL", rest]
    return {"Test": test, **{k: v for k, v in options.items() if v}}
