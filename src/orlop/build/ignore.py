"""`.dockerignore` with Docker's semantics: a port of moby/patternmatcher (and of
`ignorefile.ReadAll`, which reads the file).

    Matcher(lines)                  the lines of a .dockerignore (or patterns): comments are
                                    lines starting with `#` (in the first column only),
                                    blank lines are skipped, each pattern is trimmed, cleaned
                                    like Go's filepath.Clean and loses a leading `/`; a
                                    leading `!` makes an exception. ValueError on a
                                    malformed pattern (`[`, a lone `!`).
    Matcher.excluded(rel_path)      whether Docker leaves that path of the context out: the
                                    last pattern matching it or one of its parent
                                    directories wins (MatchesOrParentMatches), so an
                                    excluded directory excludes what it holds unless a later
                                    exception matches the path.
    Matcher.may_include_below(dir)  for an excluded directory: whether the docker CLI still
                                    walks into it, i.e. an exception pattern starts with
                                    `dir/` (exactly the CLI's test, so `!**/keep` does NOT
                                    make it walk into an excluded directory, as in Docker).
    load(context_dir)               the Matcher of the context's .dockerignore (none: an
                                    empty one); a .dockerignore that is a symlink is followed
                                    only inside the context.
    keep_build_files(lines, dockerfile)
                                    the docker CLI's TrimBuildFilesFromExcludes: the patterns
                                    plus `!.dockerignore` and `!<dockerfile>` when they are
                                    excluded, so that the client still sends them (the daemon
                                    then deletes them from the context, see
                                    context.remove_build_files: COPY . never copies them).

Pattern syntax: Go's filepath.Match (`*` and `?` never match `/`, `[a-z]`, `[^a-z]`, `\\`
escapes) plus `**`, any number of directories (`**/x` also matches `x`; `dir/**` matches
what is below dir, not dir itself). Paths are slash-separated and relative to the context
root; "." is never excluded.
"""

from __future__ import annotations

import os
import re

__all__ = ["Matcher", "load", "keep_build_files", "go_clean", "go_match", "read_patterns"]

_REGEX_SPECIAL = set(".+()|{}$")


def go_clean(path: str) -> str:
    """Go's path.Clean: the shortest equivalent slash path ("" and "a/.." are ".")."""
    if not path:
        return "."
    rooted = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(part)
    cleaned = "/".join(parts)
    if rooted:
        return "/" + cleaned
    return cleaned or "."


def read_patterns(lines: list[str]) -> list[str]:
    """ignorefile.ReadAll: the patterns of a .dockerignore's lines."""
    out = []
    for number, line in enumerate(lines):
        if number == 0:
            line = line.removeprefix("\ufeff")
        line = line.rstrip("\r\n")
        if line.startswith("#"):
            continue
        pattern = line.strip()
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = pattern[1:].strip()
        if pattern:
            pattern = go_clean(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        out.append("!" + pattern if invert else pattern)
    return out


class BadPattern(ValueError):
    pass


def go_match(pattern: str, name: str) -> bool:
    """Go's filepath.Match on slash paths; BadPattern ("syntax error in pattern") when the
    pattern is malformed, even where it does not match."""
    while pattern:
        star, chunk, pattern = _scan_chunk(pattern)
        if star and not chunk:
            return "/" not in name
        rest, ok = _match_chunk(chunk, name)
        if ok and (not rest or pattern):
            name = rest
            continue
        if star:
            matched = False
            i = 0
            while i < len(name) and name[i] != "/":
                rest, ok = _match_chunk(chunk, name[i + 1:])
                if ok:
                    if not pattern and rest:
                        i += 1
                        continue
                    name = rest
                    matched = True
                    break
                i += 1
            if matched:
                continue
        while pattern:                      # the rest must still be well formed
            _, chunk, pattern = _scan_chunk(pattern)
            _match_chunk(chunk, "")
        return False
    return not name


def _scan_chunk(pattern: str) -> tuple[bool, str, str]:
    star = False
    while pattern.startswith("*"):
        pattern, star = pattern[1:], True
    in_range, i = False, 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            if i + 1 < len(pattern):
                i += 1
        elif ch == "[":
            in_range = True
        elif ch == "]":
            in_range = False
        elif ch == "*" and not in_range:
            break
        i += 1
    return star, pattern[:i], pattern[i:]


def _match_chunk(chunk: str, s: str) -> tuple[str, bool]:
    """Whether chunk (no `*`) matches the start of s, and the rest; checks the whole chunk
    is well formed even after a mismatch."""
    failed = False
    while chunk:
        if not failed and not s:
            failed = True
        ch = chunk[0]
        if ch == "[":
            r = ""
            if not failed:
                r, s = s[0], s[1:]
            chunk = chunk[1:]
            negated = chunk.startswith("^")
            if negated:
                chunk = chunk[1:]
            match, ranges = False, 0
            while True:
                if chunk.startswith("]") and ranges > 0:
                    chunk = chunk[1:]
                    break
                lo, chunk = _get_esc(chunk)
                hi = lo
                if chunk[0] == "-":
                    hi, chunk = _get_esc(chunk[1:])
                if lo <= r <= hi and not failed:
                    match = True
                ranges += 1
            if match == negated:
                failed = True
        elif ch == "?":
            if not failed:
                if s[0] == "/":
                    failed = True
                s = s[1:]
            chunk = chunk[1:]
        else:
            if ch == "\\":
                chunk = chunk[1:]
                if not chunk:
                    raise BadPattern("syntax error in pattern")
            if not failed:
                if chunk[0] != s[0]:
                    failed = True
                s = s[1:]
            chunk = chunk[1:]
    if failed:
        return "", False
    return s, True


def _get_esc(chunk: str) -> tuple[str, str]:
    if not chunk or chunk[0] in "-]":
        raise BadPattern("syntax error in pattern")
    if chunk[0] == "\\":
        chunk = chunk[1:]
        if not chunk:
            raise BadPattern("syntax error in pattern")
    r, rest = chunk[0], chunk[1:]
    if not rest:
        raise BadPattern("syntax error in pattern")
    return r, rest


class _Pattern:
    """One pattern, compiled as patternmatcher does: an exact name, a `dir/**` prefix, a
    `**/name` suffix, or a regular expression."""

    def __init__(self, cleaned: str, exclusion: bool) -> None:
        self.cleaned = cleaned
        self.exclusion = exclusion
        self.kind, self.regex = _compile(cleaned)

    def match(self, path: str) -> bool:
        if self.kind == "exact":
            return path == self.cleaned
        if self.kind == "prefix":
            return path.startswith(self.cleaned[:-2])
        if self.kind == "suffix":
            suffix = self.cleaned[2:]
            if path.endswith(suffix):
                return True
            return suffix.startswith("/") and path == suffix[1:]
        return self.regex is not None and self.regex.match(path) is not None

    def __repr__(self) -> str:
        return ("!" if self.exclusion else "") + self.cleaned


def _compile(pattern: str) -> tuple[str, re.Pattern | None]:
    out = ["^"]
    kind = "exact"
    i, n, first = 0, len(pattern), True
    while i < n:
        ch = pattern[i]
        i += 1
        if ch == "*":
            if i < n and pattern[i] == "*":
                i += 1
                if i < n and pattern[i] == "/":
                    i += 1
                if i >= n:
                    if kind == "exact":
                        kind = "prefix"
                    else:
                        out.append(".*")
                        kind = "regexp"
                else:
                    out.append("(.*/)?")
                    kind = "regexp"
                if first:
                    kind = "suffix"
            else:
                out.append("[^/]*")
                kind = "regexp"
        elif ch == "?":
            out.append("[^/]")
            kind = "regexp"
        elif ch in _REGEX_SPECIAL:
            out.append("\\" + ch)
        elif ch == "\\":
            if i < n:
                escaped = pattern[i]
                out.append(re.escape(escaped) if escaped.isalnum() or escaped == "_" else "\\" + escaped)
                i += 1
                kind = "regexp"
            else:
                out.append("\\\\")
        elif ch in "[]":
            out.append(ch)
            kind = "regexp"
        else:
            out.append(ch)
        first = False
    if kind != "regexp":
        return kind, None
    out.append(r"\Z")
    try:
        return kind, re.compile("".join(out))
    except re.error:
        return kind, None


class Matcher:
    def __init__(self, patterns: list[str]) -> None:
        self.patterns: list[_Pattern] = []
        for raw in read_patterns(patterns):
            pattern = go_clean(raw.strip())
            exclusion = pattern.startswith("!")
            if exclusion:
                if len(pattern) == 1:
                    raise ValueError('illegal exclusion pattern: "!"')
                pattern = pattern[1:]
            try:
                go_match(pattern, ".")
            except BadPattern:
                raise ValueError(f".dockerignore: syntax error in pattern {pattern!r}") from None
            self.patterns.append(_Pattern(pattern, exclusion))
        self.exclusions = any(p.exclusion for p in self.patterns)

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def excluded(self, rel_path: str) -> bool:
        path = go_clean(rel_path.lstrip("/"))
        if path in (".", ""):
            return False
        parents: list[str] = []
        if "/" in path:
            dirs = path.split("/")[:-1]
            parents = ["/".join(dirs[:i + 1]) for i in range(len(dirs))]
        matched = False
        for pattern in self.patterns:
            if pattern.exclusion != matched:
                continue
            match = pattern.match(path) or any(pattern.match(parent) for parent in parents)
            if match:
                matched = not pattern.exclusion
        return matched

    def may_include_below(self, rel_dir: str) -> bool:
        if not self.exclusions:
            return False
        prefix = go_clean(rel_dir.lstrip("/")) + "/"
        return any(p.exclusion and (p.cleaned + "/").startswith(prefix) for p in self.patterns)

    def __repr__(self) -> str:
        return f"Matcher({[repr(p) for p in self.patterns]})"


def keep_build_files(lines: list[str], dockerfile: str = "Dockerfile") -> list[str]:
    patterns = read_patterns(lines)
    matcher = Matcher(patterns)
    if matcher.excluded(".dockerignore"):
        patterns.append("!.dockerignore")
    dockerfile = go_clean(dockerfile.replace(os.sep, "/"))
    if matcher.excluded(dockerfile):
        patterns.append("!" + dockerfile)
    return patterns


def load(context_dir: str) -> Matcher:
    from orlop.build.context import ContextError, resolve

    try:
        path = resolve(context_dir, ".dockerignore")
    except ContextError:
        return Matcher([])
    try:
        with open(path, "rb") as f:
            data = f.read()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return Matcher([])
    return Matcher(data.decode("utf-8", errors="replace").split("\n"))
