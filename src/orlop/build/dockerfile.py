"""Dockerfiles as Docker's classic builder reads them.

`dockerfile_parse` (a well-kept parser) splits the text into instructions, joining line
continuations and dropping comments; this module adds what the builder needs on top:
the `# escape=` directive, exec (JSON) form, `--flag=value` options, stages, ONBUILD, and
Docker's variable substitution, with errors that name the line.

    parse(text) -> (args before the first FROM, [Stage])
    expand(word, env) -> word with $VAR, ${VAR}, ${VAR:-default}, ${VAR:+alt} substituted
    key_values(inst, env) -> [(key, value)] of ENV/LABEL/ARG
    words(inst, env) -> the arguments of COPY/ADD/EXPOSE/VOLUME, expanded
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field

from dockerfile_parse import DockerfileParser

KNOWN = {"FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME",
         "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"}
JSON_FORMS = {"RUN", "CMD", "ENTRYPOINT", "SHELL", "COPY", "ADD", "VOLUME"}
FLAGS = {"FROM": {"platform"}, "COPY": {"from", "chown", "chmod", "link", "parents", "exclude"},
         "ADD": {"chown", "chmod", "link", "checksum", "keep-git-dir", "exclude"},
         "RUN": {"mount", "network", "security"},
         "HEALTHCHECK": {"interval", "timeout", "start-period", "start-interval", "retries"}}
_FLAG = re.compile(r"--([a-z-]+)(?:=(\S*))?\s*")


class DockerfileError(ValueError):
    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(f"Dockerfile parse error line {line}: {message}" if line else message)
        self.line = line


@dataclass
class Instruction:
    keyword: str
    args: str
    json: list[str] | None
    flags: dict[str, str]
    line: int
    original: str
    heredocs: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Stage:
    index: int
    name: str | None
    base: str
    platform: str | None
    instructions: list[Instruction]
    from_line: Instruction


def _escape_char(text: str) -> str:
    for line in text.splitlines():
        match = re.fullmatch(r"#\s*([a-zA-Z]+)\s*=\s*(\S+)\s*", line)
        if not match:
            break  # parser directives only come first
        if match.group(1).lower() == "escape":
            if match.group(2) not in ("\\", "`"):
                raise DockerfileError(f"invalid escape token '{match.group(2)}' does not match ` or \\")
            return match.group(2)
    return "\\"


def _with_backslash_escape(text: str) -> str:
    """dockerfile_parse knows `\\` continuations only: turn a backtick escape into one."""
    return re.sub(r"`(\r?\n)", lambda m: "\\" + m.group(1), text.replace("\\", "\\\\"))


def parse(text: str) -> tuple[list[Instruction], list[Stage]]:
    escape = _escape_char(text)
    source = text if escape == "\\" else _with_backslash_escape(text)
    parser = DockerfileParser(fileobj=io.BytesIO(source.encode()))
    meta_args: list[Instruction] = []
    stages: list[Stage] = []
    for item in parser.structure:
        keyword = item["instruction"].upper()
        if keyword == "COMMENT":
            continue
        line = item["startline"] + 1
        value = item["value"].strip()
        if escape == "`":
            value = value.replace("\\\\", "\\")
        inst = _instruction(keyword, value, line, item["content"].strip())
        if keyword == "FROM":
            stages.append(_stage(len(stages), inst))
        elif not stages:
            if keyword != "ARG":
                raise DockerfileError(f"{keyword} before FROM: only ARG may come before the first FROM", line)
            meta_args.append(inst)
        else:
            stages[-1].instructions.append(inst)
    if not stages:
        raise DockerfileError("the Dockerfile has no FROM instruction (file with no instructions?)")
    return meta_args, stages


def _instruction(keyword: str, value: str, line: int, original: str) -> Instruction:
    if keyword not in KNOWN:
        raise DockerfileError(f"unknown instruction: {keyword}", line)
    flags: dict[str, str] = {}
    allowed = FLAGS.get(keyword, set())
    while value.startswith("--"):
        match = _FLAG.match(value)
        if not match:
            break
        name = match.group(1)
        if name not in allowed:
            raise DockerfileError(f"unknown flag: --{name} for {keyword}", line)
        flags[name] = match.group(2) if match.group(2) is not None else "true"
        value = value[match.end():]
    if keyword == "ONBUILD":
        inner = value.split(None, 1)[0].upper() if value else ""
        if inner in ("ONBUILD", "FROM", "MAINTAINER"):
            raise DockerfileError(f"{inner} isn't allowed as an ONBUILD trigger", line)
        if inner not in KNOWN:
            raise DockerfileError(f"unknown instruction in ONBUILD: {inner}", line)
    if not value and keyword not in ("RUN", "CMD", "ENTRYPOINT"):
        raise DockerfileError(f"{keyword} requires at least one argument", line)
    exec_form = None
    if keyword in JSON_FORMS and value.startswith("["):
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None  # not JSON: Docker then takes it as shell form
        if isinstance(parsed, list) and all(isinstance(p, str) for p in parsed):
            exec_form = parsed
        elif keyword == "SHELL":
            raise DockerfileError("SHELL requires the arguments to be in JSON form", line)
    text = original.split(None, 1)
    return Instruction(keyword, value, exec_form, flags, line, " ".join(
        [text[0].upper(), " ".join(text[1].split())]) if len(text) > 1 else keyword)


def _stage(index: int, inst: Instruction) -> Stage:
    parts = inst.args.split()
    if len(parts) == 3 and parts[1].lower() == "as":
        name = parts[2].lower()
        if not re.fullmatch(r"[a-z][a-z0-9-_.]*", name):
            raise DockerfileError(f"invalid name for build stage: {parts[2]!r}, name can't start with a number or "
                                  "contain symbols", inst.line)
    elif len(parts) == 1:
        name = None
    else:
        raise DockerfileError("FROM requires either one or three arguments (image [AS name])", inst.line)
    return Stage(index, name, parts[0], inst.flags.get("platform"), [], inst)


_VAR = re.compile(r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-+?])(?P<word>[^}]*))?\}"
                  r"|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))")


def expand(word: str, env: dict[str, str], *, escape: str = "\\") -> str:
    """Docker's substitution: ${VAR:-default} (unset or empty), ${VAR-default} (unset),
    ${VAR:+alt} (set and not empty), ${VAR+alt} (set); an escaped `$` stays literal."""
    out = []
    i = 0
    while i < len(word):
        char = word[i]
        if char == escape and i + 1 < len(word) and word[i + 1] == "$":
            out.append("$")
            i += 2
            continue
        if char == "$":
            match = _VAR.match(word, i)
            if match:
                out.append(_substitute(match, env))
                i = match.end()
                continue
        out.append(char)
        i += 1
    return "".join(out)


def _substitute(match: re.Match, env: dict[str, str]) -> str:
    name = match.group("braced") or match.group("plain")
    op, word = match.group("op"), match.group("word") or ""
    value = env.get(name)
    if op is None:
        return value or ""
    colon = op.startswith(":")
    present = value is not None and (value != "" or not colon)
    if op.endswith("-"):
        return value if present else expand(word, env)
    if op.endswith("+"):
        return expand(word, env) if present else ""
    if not present:
        raise DockerfileError(f"{name}: {word or 'is not set'}")
    return value


def _split_words(text: str) -> list[str]:
    """Shell-like split with quotes, as Docker splits ENV/LABEL values and COPY arguments."""
    words, current, quote, escaped, has_word = [], [], None, False, False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\" and quote != "'":
            escaped = True
        elif quote:
            if char == quote:
                quote = None
            else:
                current.append(char)
        elif char in "\"'":
            quote, has_word = char, True
        elif char.isspace():
            if current or has_word:
                words.append("".join(current))
                current, has_word = [], False
        else:
            current.append(char)
    if quote:
        raise DockerfileError(f"unmatched quote in {text!r}")
    if current or has_word:
        words.append("".join(current))
    return words


def key_values(inst: Instruction, env: dict[str, str]) -> list[tuple[str, str | None]]:
    """ENV/LABEL `k=v k2="v 2"`, the legacy `ENV key value with spaces`, ARG `name[=default]`."""
    text = inst.args
    if inst.keyword == "ENV" and "=" not in text.split(None, 1)[0]:
        parts = text.split(None, 1)
        if len(parts) < 2:
            raise DockerfileError("ENV must have two arguments", inst.line)
        return [(parts[0], expand(parts[1], env))]
    out: list[tuple[str, str | None]] = []
    for word in _split_words(text):
        key, eq, value = word.partition("=")
        if not key:
            raise DockerfileError(f"{inst.keyword} names can not be blank", inst.line)
        if not eq:
            if inst.keyword != "ARG":
                raise DockerfileError(f"{inst.keyword} needs key=value pairs (got {word!r})", inst.line)
            out.append((key, None))
            continue
        out.append((key, expand(value, env)))
    return out


def words(inst: Instruction, env: dict[str, str]) -> list[str]:
    if inst.json is not None:
        return [expand(w, env) for w in inst.json]
    return [expand(w, env) for w in _split_words(inst.args)]
