"""`.dockerignore` with Docker's semantics (moby's patternmatcher): patterns cleaned like
filepath.Clean with a leading `/` dropped, Go's filepath.Match syntax plus `**` for any
number of directories, `!` exceptions, the last matching pattern deciding; a pattern that
matches a directory excludes what is below it too."""

from __future__ import annotations

import os
import posixpath
import re


def _clean(pattern: str) -> str:
    pattern = posixpath.normpath(pattern.strip().lstrip("/"))
    return "" if pattern == "." else pattern


def _regex(pattern: str) -> re.Pattern:
    out, i = ["^"], 0
    while i < len(pattern):
        char = pattern[i]
        if char == "*":
            if pattern.startswith("**", i):
                i += 2
                if pattern.startswith("/", i):  # `**/` : zero or more directories
                    i += 1
                    out.append("(?:.*/)?")
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                raise ValueError(f"syntax error in pattern {pattern!r}")
            body = pattern[i + 1:end]
            out.append("[" + ("^" + body[1:] if body.startswith("^") else body) + "]")
            i = end
        elif char == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(char))
        i += 1
    out.append("$")
    return re.compile("".join(out))


class Matcher:
    def __init__(self, patterns: list[str]) -> None:
        self.rules: list[tuple[bool, re.Pattern, str]] = []
        for raw in patterns:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            exclusion = line.startswith("!")
            pattern = _clean(line[1:] if exclusion else line)
            if pattern:
                self.rules.append((exclusion, _regex(pattern), pattern))

    def excluded(self, rel_path: str) -> bool:
        path = posixpath.normpath(rel_path)
        parents = [path]
        while "/" in parents[-1]:
            parents.append(parents[-1].rsplit("/", 1)[0])
        matched = False
        for exclusion, regex, _ in self.rules:
            if any(regex.match(p) for p in parents):
                matched = not exclusion
        return matched

    def may_include_below(self, rel_dir: str) -> bool:
        """Whether an exception could re-include something under an excluded directory."""
        prefix = posixpath.normpath(rel_dir) + "/"
        return any(exclusion and (pattern.startswith(prefix) or "*" in pattern)
                   for exclusion, _, pattern in self.rules)


def load(context_dir: str) -> Matcher:
    try:
        with open(os.path.join(context_dir, ".dockerignore"), encoding="utf-8", errors="replace") as f:
            return Matcher(f.read().splitlines())
    except FileNotFoundError:
        return Matcher([])
