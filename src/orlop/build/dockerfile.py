"""Dockerfiles as Docker reads them: a port of the parser, the instruction checks and the
shell-word lexer that dockerd's classic builder uses (moby/buildkit `frontend/dockerfile`:
`parser`, `instructions`, `shell`), so that every Dockerfile Docker accepts parses the same
way here and every one it refuses is refused, with the line.

    parse(text) -> (meta_args, stages)
        meta_args: the ARG instructions before the first FROM; stages: one Stage per FROM,
        holding the instructions that follow it. Raises DockerfileError (`.line` is set).
    expand(word, env, *, escape="\\\\") -> str
        Docker's substitution and quote removal of one word (ProcessWord): $VAR, ${VAR},
        ${VAR:-word} / ${VAR-word} (unset or empty / unset), ${VAR:+word} / ${VAR+word},
        ${VAR:?msg} / ${VAR?msg} (error), ${VAR#pat} ${VAR##pat} ${VAR%pat} ${VAR%%pat},
        ${VAR/pat/repl} ${VAR//pat/repl}; 'single' and "double" quotes removed, an escaped
        `\\$` stays a literal `$`; unknown variables (and $1, $$, $@...) become "".
    key_values(inst, env) -> [(key, value)]
        ENV / LABEL (`a=1 b="two words"`, or the legacy `ENV key the value`), ARG
        (`name[=default]`; a name without default gives (name, None)), keys and values expanded.
    words(inst, env) -> [str]
        The arguments of COPY/ADD (sources then destination), VOLUME, EXPOSE (a variable may
        expand to several ports, as in Docker), FROM: exec (JSON) form or split on blanks,
        then each expanded. RUN/CMD/ENTRYPOINT/SHELL give their exec form or [args]
        unexpanded: the builder never expands those, the shell does.

Helpers for the builder: flag(inst, name, env) (an option, expanded where Docker expands
it: COPY/ADD --chown/--chmod/--checksum, not --from); sources_and_dest(inst, env) (COPY/ADD
paths, heredoc sources as (name, content), destination); heredoc_content(inst, name, env);
shell_command(inst) (what a shell-form RUN gives to the shell, heredocs included);
healthcheck(inst) (the config's Healthcheck); parse_duration(text) (Go's, in ns).

Which instructions Docker expands, and so which ones this module expands: ADD, COPY (also
their --chown/--chmod/--checksum, see `flag`), ENV, EXPOSE, FROM (with the ARGs before the
first FROM only), LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR, and ARG defaults. RUN, CMD,
ENTRYPOINT, SHELL, HEALTHCHECK, MAINTAINER and ONBUILD are stored as written (an ONBUILD
trigger is expanded when it runs, in the child build).

An Instruction keeps: `keyword` (upper case), `args` (the text after the keyword and its
flags, continuation lines joined as Docker joins them: the escape character and the line
end removed, the next line's indentation kept, comment and blank lines inside skipped),
`json` (the exec form, or None), `flags` ({name: value}; booleans are "true"/"false"; every
value of a repeated flag is in `flag_values`), `line` / `end_line` (1-based), `original`
(the whole instruction on one line: "Step 3/7 : <original>"), `heredocs` ([(name, body)],
bodies of `<<-` heredocs with their leading tabs already removed), `escape` (the
`# escape=` character in force) and `warnings` (what Docker would warn about: empty
continuation lines, text that looks like JSON but is not, options the classic builder ignores
such as COPY --link).

Beyond Docker's classic parser: heredocs (`RUN <<EOF`, `COPY <<EOF /file`, as BuildKit),
the ${VAR#...}/${VAR/...} forms and HEALTHCHECK --start-interval (all of current Docker's
shell lexer). Errors read as dockerd's: "Dockerfile parse error line 3: unknown instruction:
FROBNICATE".

`dockerfile_parse` (a well-kept parser) is not used for the scanning itself: it ends an
instruction at a blank line inside a continuation (Docker skips it and warns), reads heredoc
bodies as instructions, and does not refuse a bad `# escape=` value (on 7 of the 33 parser
test files of moby/buildkit it finds other instructions than Docker; this module matches all
33, and all of Docker's variable substitution cases); the tests compare with it on the
Dockerfiles where both are right.
"""

from __future__ import annotations

import json as _json
import re
from dataclasses import dataclass, field
from decimal import Decimal

__all__ = ["DockerfileError", "Instruction", "Stage", "parse", "expand", "key_values", "words", "flag",
           "sources_and_dest", "heredoc_content", "shell_command", "healthcheck", "parse_duration",
           "EXPANDED", "KNOWN"]

KNOWN = ("ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
         "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR")
# Instructions whose arguments the builder expands (Docker's "Environment replacement").
EXPANDED = frozenset({"ADD", "ARG", "COPY", "ENV", "EXPOSE", "FROM", "LABEL", "STOPSIGNAL", "USER", "VOLUME",
                      "WORKDIR"})

_BOOL, _STRING, _STRINGS = "bool", "string", "strings"
# The options each instruction takes (buildkit `instructions/parse.go`); the others take none.
_FLAGS: dict[str, dict[str, str]] = {
    "ADD": {"chown": _STRING, "chmod": _STRING, "link": _BOOL, "keep-git-dir": _BOOL, "checksum": _STRING,
            "unpack": _BOOL, "exclude": _STRINGS},
    "COPY": {"chown": _STRING, "from": _STRING, "chmod": _STRING, "link": _BOOL, "exclude": _STRINGS,
             "parents": _BOOL},
    "FROM": {"platform": _STRING},
    "RUN": {"mount": _STRINGS, "network": _STRING, "security": _STRING, "device": _STRINGS},
    "HEALTHCHECK": {"interval": _STRING, "timeout": _STRING, "start-period": _STRING,
                    "start-interval": _STRING, "retries": _STRING},
}
_NOTES = {
    ("COPY", "link"): "COPY --link is ignored: the classic builder always copies onto the previous layer",
    ("ADD", "link"): "ADD --link is ignored: the classic builder always copies onto the previous layer",
    ("COPY", "parents"): "COPY --parents is a BuildKit option",
    ("COPY", "exclude"): "COPY --exclude is a BuildKit option",
    ("ADD", "exclude"): "ADD --exclude is a BuildKit option",
    ("ADD", "keep-git-dir"): "ADD --keep-git-dir is a BuildKit option (git sources)",
    ("ADD", "unpack"): "ADD --unpack is a BuildKit option",
}
_JSON_FORMS = frozenset({"ADD", "COPY", "VOLUME", "RUN", "CMD", "ENTRYPOINT", "SHELL"})
_HEREDOC_FORMS = frozenset({"ADD", "COPY", "RUN"})

_WHITESPACE = re.compile(r"[\t\v\f\r ]+")                       # reWhitespace
_HEREDOC = re.compile(r"(\d*)<<(-?)\s*([^<]*)\Z", re.S)         # reHeredoc
_LEADING_TABS = re.compile(r"^\t+", re.M)
_DIRECTIVE = re.compile(r"([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*\Z", re.S)
_STAGE_NAME = re.compile(r"[a-z][a-z0-9-_.]*\Z")
_DIRECTIVES = ("syntax", "escape", "check")


class DockerfileError(ValueError):
    """A Dockerfile Docker would refuse; `line` is the 1-based line of the instruction
    (None when the error is not about one line), `reason` the message without the line."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(f"Dockerfile parse error line {line}: {message}" if line else message)
        self.line = line
        self.reason = message


@dataclass
class Instruction:
    keyword: str
    args: str
    json: list[str] | None
    flags: dict[str, str]
    line: int
    original: str
    heredocs: list[tuple[str, str]] = field(default_factory=list)
    end_line: int = 0
    escape: str = "\\"
    flag_values: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    heredoc_expand: dict[str, bool] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.original


@dataclass
class Stage:
    index: int
    name: str | None
    base: str
    platform: str | None
    instructions: list[Instruction]
    from_line: Instruction


# --- the shell-word lexer (buildkit shell/lex.go) ------------------------------------------

def _is_space(ch: str) -> bool:        # Go's unicode.IsSpace
    return ch in "\t\n\v\f\r \x85\xa0" or (ch > "\xff" and ch.isspace())


def _is_digit(ch: str) -> bool:        # unicode.IsDigit: category Nd
    return ch.isdecimal()


class _LexError(Exception):
    pass


class _Words:
    def __init__(self) -> None:
        self.buf = ""
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if _is_space(ch):
            if self.in_word and self.buf:
                self.words.append(self.buf)
                self.buf = ""
                self.in_word = False
        else:
            self.add_raw(ch)

    def add_raw(self, text: str) -> None:
        self.buf += text
        self.in_word = True

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def get(self) -> list[str]:
        if self.buf:
            self.words.append(self.buf)
            self.buf = ""
            self.in_word = False
        return self.words


class _Shell:
    """Docker's shell.Lex: quotes, escapes and ${} substitution of one word, or of a line
    split into words after substitution (as EXPOSE $PORTS)."""

    def __init__(self, escape: str = "\\", *, raw_quotes: bool = False, raw_escapes: bool = False,
                 skip_quotes: bool = False, skip_unset: bool = False) -> None:
        self.escape = escape
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes
        self.skip_quotes = skip_quotes
        self.skip_unset = skip_unset

    def word(self, text: str, env) -> str:
        return self._process(text, env)[0]

    def words(self, text: str, env) -> list[str]:
        return self._process(text, env)[1]

    def _process(self, text: str, env) -> tuple[str, list[str]]:
        self.text, self.pos, self.env = text, 0, env
        self._raw_escapes = self.raw_escapes
        try:
            return self._stop_on(None, self.raw_escapes)
        except _LexError as e:
            raise DockerfileError(f"failed to process {_go_quote(text)}: {e}") from None

    def _peek(self) -> str | None:
        return self.text[self.pos] if self.pos < len(self.text) else None

    def _next(self) -> str | None:
        if self.pos >= len(self.text):
            return None
        self.pos += 1
        return self.text[self.pos - 1]

    def _stop_on(self, stop: str | None, raw_escapes: bool) -> tuple[str, list[str]]:
        saved, self._raw_escapes = self._raw_escapes, raw_escapes
        try:
            result: list[str] = []
            words = _Words()
            while (ch := self._peek()) is not None:
                if stop is not None and ch == stop:
                    self._next()
                    return "".join(result), words.get()
                if ch == "$":
                    value = self._dollar()
                    result.append(value)
                    words.add_string(value)
                elif ch == "<":
                    value = self._heredoc_marker()
                    result.append(value)
                    words.add_raw(value)
                elif ch in "'\"" and not self.skip_quotes:
                    value = self._single_quote() if ch == "'" else self._double_quote()
                    result.append(value)
                    words.add_raw(value)
                else:
                    ch = self._next()
                    if ch == self.escape:
                        if self._raw_escapes:
                            words.add_raw(ch)
                            result.append(ch)
                        ch = self._next()
                        if ch is None:
                            break
                        words.add_raw(ch)
                    else:
                        words.add_char(ch)
                    result.append(ch)
            if stop is not None:
                raise _LexError(f"unexpected end of statement while looking for matching {stop}")
            return "".join(result), words.get()
        finally:
            self._raw_escapes = saved

    def _single_quote(self) -> str:
        out = []
        ch = self._next()
        if self.raw_quotes:
            out.append(ch)
        while True:
            ch = self._next()
            if ch is None:
                raise _LexError("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                if self.raw_quotes:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def _double_quote(self) -> str:
        out = []
        ch = self._next()
        if self.raw_quotes:
            out.append(ch)
        while True:
            peek = self._peek()
            if peek is None:
                raise _LexError("unexpected end of statement while looking for matching double-quote")
            if peek == '"':
                ch = self._next()
                if self.raw_quotes:
                    out.append(ch)
                return "".join(out)
            if peek == "$":
                out.append(self._dollar())
                continue
            ch = self._next()
            if ch == self.escape:
                if self._raw_escapes:
                    out.append(ch)
                nxt = self._peek()
                if nxt is None:
                    continue
                if nxt in ('"', "$", self.escape):
                    ch = self._next()
            out.append(ch)

    def _heredoc_marker(self) -> str:
        self._next()
        if self._peek() != "<":
            return "<"
        self._next()
        space = []
        while (ch := self._peek()) is not None and ch in "\t\r ":
            space.append(ch)
            self._next()
        return "<<" + "".join(space)

    def _name(self) -> str:
        name: list[str] = []
        while (ch := self._peek()) is not None:
            if not name and _is_digit(ch):
                while (ch := self._peek()) is not None and _is_digit(ch):
                    name.append(self._next())
                return "".join(name)
            if not name and ch in "@*#?-$!0":
                return self._next()
            if not (ch.isalpha() or _is_digit(ch) or ch == "_"):
                break
            name.append(self._next())
        return "".join(name)

    def _get(self, name: str) -> str | None:
        value = self.env.get(name) if self.env is not None else None
        return value

    def _dollar(self) -> str:
        self._next()
        if self._peek() != "{":
            name = self._name()
            if not name:
                return "$"
            value = self._get(name)
            if value is None and self.skip_unset:
                return "$" + name
            return value or ""
        self._next()
        peek = self._peek()
        if peek is None:
            raise _LexError("syntax error: missing '}'")
        if peek in "{}:":
            raise _LexError("syntax error: bad substitution")
        name = self._name()
        ch = self._next()
        if ch is None:
            raise _LexError("syntax error: missing '}'")
        if ch == "}":
            value = self._get(name)
            if value is None and self.skip_unset:
                return "${" + name + "}"
            return value or ""
        if ch == "/":
            return self._replace(name)
        modifier, null_is_unset = ch, False
        if ch == ":":
            null_is_unset = True
            ch = self._next() or ""
            modifier += ch
        elif ch not in "+-?#%":
            raise _LexError(f"unsupported modifier ({modifier}) in substitution")
        raw = ch in ("#", "%")
        if null_is_unset and raw:
            raise _LexError(f"unsupported modifier ({modifier}) in substitution")
        try:
            word, _ = self._stop_on("}", raw)
        except _LexError:
            if self._peek() is None:
                raise _LexError("syntax error: missing '}'") from None
            raise
        value = self._get(name)
        if value is None and self.skip_unset:
            return "${" + name + modifier + word + "}"
        unset = value is None or (null_is_unset and value == "")
        if ch == "-":
            return word if unset else value
        if ch == "+":
            return "" if unset else word
        if ch == "?":
            if value is None:
                raise _LexError(f"{name}: {word or 'is not allowed to be unset'}")
            if null_is_unset and value == "":
                raise _LexError(f"{name}: {word or 'is not allowed to be empty'}")
            return value
        if ch in ("#", "%"):
            greedy = word.startswith(ch)
            if greedy:
                word = word[1:]
            value = value or ""
            if ch == "%":
                return _trim_suffix(word, value, greedy)
            return _trim_prefix(word, value, greedy)
        raise _LexError(f"unsupported modifier ({modifier}) in substitution")

    def _replace(self, name: str) -> str:
        replace_all = self._peek() == "/"
        if replace_all:
            self._next()
        try:
            pattern, _ = self._stop_on("/", True)
        except _LexError:
            if self._peek() is None:
                raise _LexError("syntax error: missing '/' in ${}") from None
            raise
        try:
            replacement, _ = self._stop_on("}", True)
        except _LexError:
            if self._peek() is None:
                raise _LexError("syntax error: missing '}'") from None
            raise
        value = self._get(name)
        if value is None and self.skip_unset:
            return "${" + name + "/" + pattern + "/" + replacement + "}"
        regex = _shell_pattern(pattern, True, False)
        value = value or ""
        if replace_all:
            return regex.sub(lambda _m: replacement, value)
        return regex.sub(lambda _m: replacement, value, count=1)


def _shell_pattern(pattern: str, greedy: bool, anchored: bool) -> re.Pattern:
    """A ${VAR#pattern} wildcard pattern (`*`, `?`, `\\` escapes) as a regular expression."""
    out = ["^"] if anchored else []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append(".*" if greedy else ".*?")
        elif ch == "?":
            out.append(".")
        elif ch == "\\":
            if i < len(pattern) and pattern[i] in "}/":
                continue
            if i >= len(pattern) or pattern[i] not in "*?\\":
                raise _LexError(f"invalid pattern ({pattern}) in substitution: invalid escape "
                                f"'\\{pattern[i] if i < len(pattern) else ''}'")
            out.append(re.escape(pattern[i]))
            i += 1
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.S)


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    match = _shell_pattern(pattern, greedy, True).search(value)
    return value[match.end():] if match else value


def _reverse_pattern(pattern: str) -> str:
    out, i = [], 0
    while i < len(pattern):
        if pattern[i] == "\\" and i + 1 < len(pattern):
            out.append(pattern[i:i + 2])
            i += 2
        else:
            out.append(pattern[i])
            i += 1
    return "".join(reversed(out))


def _trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    return _trim_prefix(_reverse_pattern(pattern), value[::-1], greedy)[::-1]


def _go_quote(text: str) -> str:
    return _json.dumps(text, ensure_ascii=False)


def expand(word: str, env: dict[str, str], *, escape: str = "\\", line: int | None = None) -> str:
    """Docker's ProcessWord: `word` with its variables substituted from `env` and its quotes
    and escapes removed. Raises DockerfileError (with `line` if given) on bad syntax."""
    try:
        return _Shell(escape).word(word, env)
    except DockerfileError as e:
        raise DockerfileError(e.reason, line) from None


# --- words as the parser splits them ------------------------------------------------------

def _parse_words(rest: str, escape: str) -> list[str]:
    """parseWords: split on blanks outside quotes, quotes and escapes kept for later."""
    words: list[str] = []
    buf: list[str] = []
    phase, quote, blank_ok = "spaces", "", False
    i, n = 0, len(rest)
    while True:
        at_end = i >= n
        ch = rest[i] if not at_end else ""
        if phase == "spaces":
            if at_end:
                break
            if _is_space(ch):
                i += 1
                continue
            phase = "word"
        if at_end:
            if blank_ok or buf:
                words.append("".join(buf))
            break
        if phase == "word":
            if _is_space(ch):
                phase = "spaces"
                if blank_ok or buf:
                    words.append("".join(buf))
                buf, blank_ok = [], False
                i += 1
                continue
            if ch in "'\"":
                quote, blank_ok, phase = ch, True, "quote"
            if ch == escape:
                if i + 1 == n:
                    i += 1
                    continue
                buf.append(ch)
                i += 1
                ch = rest[i]
            buf.append(ch)
            i += 1
            continue
        # in a quote
        if ch == quote:
            phase = "word"
        if ch == escape and quote != "'":
            if i + 1 == n:
                phase = "word"
                i += 1
                continue
            buf.append(ch)
            i += 1
            ch = rest[i]
        buf.append(ch)
        i += 1
    return words


def _extract_flags(line: str, escape: str) -> tuple[str, list[str]]:
    """extractBuilderFlags: the leading `--name[=value]` words, and the rest of the line."""
    words: list[str] = []
    buf: list[str] = []
    phase, quote, blank_ok = "spaces", "", False
    pos, n = 0, len(line)
    while pos <= n:
        ch = line[pos] if pos < n else ""
        if phase == "spaces":
            if pos == n:
                break
            if _is_space(ch):
                pos += 1
                continue
            if ch != "-" or pos + 1 == n or line[pos + 1] != "-":
                return line[pos:], words
            phase = "word"
        if pos == n:
            word = "".join(buf)
            if word != "--" and (blank_ok or word):
                words.append(word)
            break
        if phase == "word":
            if _is_space(ch):
                word = "".join(buf)
                phase = "spaces"
                if word == "--":
                    return line[pos:], words
                if blank_ok or word:
                    words.append(word)
                buf, blank_ok = [], False
                pos += 1
                continue
            if ch in "'\"":
                quote, blank_ok, phase = ch, True, "quote"
                pos += 1
                continue
            if ch == escape:
                if pos + 1 == n:
                    pos += 1
                    continue
                pos += 1
                ch = line[pos]
            buf.append(ch)
            pos += 1
            continue
        if ch == quote:
            phase = "word"
            pos += 1
            continue
        if ch == escape:
            if pos + 1 == n:
                phase = "word"
                pos += 1
                continue
            pos += 1
            ch = line[pos]
        buf.append(ch)
        pos += 1
    return "", words


def _json_array(rest: str) -> list | None:
    """The JSON array `rest` is, as Go's encoding/json reads it; None if it is not one."""
    rest = rest.lstrip()
    if not rest.startswith("["):
        return None

    def no_constants(name):
        raise ValueError(name)
    try:
        value = _json.loads(rest, parse_constant=no_constants)
    except ValueError:
        return None
    return value if isinstance(value, list) else None


# --- heredocs -------------------------------------------------------------------------------

def _heredoc(word: str) -> tuple[str, bool, bool] | None:
    """(name, expand, chomp) if `word` is a heredoc marker (`<<EOF`, `<<-"EOF"`)."""
    match = _HEREDOC.match(word)
    if not match or not match.group(3):
        return None
    rest = match.group(3)
    try:
        cooked = _Shell("\\", skip_unset=True).words(rest, {})
        raw = _Shell("\\", skip_unset=True, raw_quotes=True).words(rest, {})
    except DockerfileError:
        return None
    if len(cooked) != 1 or len(raw) != 1:
        return None
    quotes = cooked[0].count("'") + cooked[0].count('"')
    raw_quotes = raw[0].count("'") + raw[0].count('"')
    return cooked[0], quotes == raw_quotes, match.group(2) == "-"


def _heredocs_in(line: str) -> list[tuple[str, bool, bool]]:
    try:
        words_ = _Shell("\\", raw_quotes=True, raw_escapes=True, skip_unset=True).words(line, {})
    except DockerfileError:
        words_ = []
    return [doc for word in words_ if (doc := _heredoc(word)) is not None]


# --- the line scanner (buildkit parser/parser.go) -------------------------------------------

class _Directives:
    def __init__(self) -> None:
        self.escape = "\\"
        self.done = False
        self.seen: set[str] = set()
        self._continuation = _continuation_re("\\")

    def line(self, token: str) -> bool:
        if self.done:
            return False
        if not token.startswith("#"):
            self.done = True
            return False
        match = _DIRECTIVE.match(token[1:].lstrip())
        if not match or match.group(1).lower() not in _DIRECTIVES:
            self.done = True
            return False
        key, value = match.group(1).lower(), match.group(2)
        if key in self.seen:
            raise DockerfileError(f"only one {key} parser directive can be used")
        self.seen.add(key)
        if key == "escape":
            if value not in ("`", "\\"):
                raise DockerfileError(f"invalid escape token '{value}' does not match ` or \\")
            self.escape = value
            self._continuation = _continuation_re(value)
        return True

    def trim_continuation(self, token: str) -> tuple[str, bool]:
        match = self._continuation.search(token)
        if match:
            return token[:match.start()] + (match.group(1) or ""), False
        return token, True


def _continuation_re(escape: str) -> re.Pattern:
    e = re.escape(escape)
    return re.compile(rf"([^{e}]){e}[ \t]*\Z|\A{e}[ \t]*\Z", re.S)


def _trim_newline(line: str) -> str:
    return line.rstrip("\r\n")


def _lstrip(line: str) -> str:
    i = 0
    while i < len(line) and _is_space(line[i]):
        i += 1
    return line[i:]


def _is_comment(line: str) -> bool:
    return _lstrip(line).startswith("#")


def _lines(text: str) -> list[str]:
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def parse(text: str) -> tuple[list[Instruction], list[Stage]]:
    """The ARG instructions before the first FROM, and the stages."""
    instructions = _scan(text)
    meta_args: list[Instruction] = []
    stages: list[Stage] = []
    for inst in instructions:
        if inst.keyword == "FROM":
            stages.append(_stage(len(stages), inst))
        elif not stages:
            if inst.keyword != "ARG":
                raise DockerfileError(f"no build stage in current context: {inst.keyword} before FROM (only ARG "
                                      "may come before the first FROM)", inst.line)
            meta_args.append(inst)
        else:
            stages[-1].instructions.append(inst)
    if not stages:
        raise DockerfileError("dockerfile contains no stages to build: there is no FROM instruction")
    return meta_args, stages


def _scan(text: str) -> list[Instruction]:
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = _lines(text)
    d = _Directives()
    out: list[Instruction] = []
    i, current = 0, 0
    while i < len(lines):
        raw = lines[i]
        i += 1
        token = _lstrip(_trim_newline(raw))
        try:
            d.line(token)
        except DockerfileError as e:
            raise DockerfileError(e.reason, current + 1) from None
        if _is_comment(token):
            token = ""
        current += 1
        start = current
        token, end_of_line = d.trim_continuation(token)
        if end_of_line and token == "":
            continue
        buf = [token]
        empty_continuation = False
        while not end_of_line and i < len(lines):
            raw = lines[i]
            i += 1
            token = _trim_newline(raw)
            d.line(token)
            current += 1
            if _is_comment(raw):
                continue
            if not _lstrip(token):
                empty_continuation = True
                continue
            token, end_of_line = d.trim_continuation(token)
            buf.append(token)
        line = "".join(buf)
        inst = _instruction(line, start, d.escape)
        if empty_continuation:
            inst.warnings.append(f"Empty continuation line found in: {line.strip()} (empty continuation lines "
                                 "will become errors in a future release)")
        if _may_have_heredocs(inst) and "<<" in line:
            for name, expand_, chomp in _heredocs_in(line):
                body: list[str] = []
                terminated = False
                while i < len(lines):
                    raw = lines[i]
                    i += 1
                    current += 1
                    candidate = _trim_newline(raw)
                    if chomp:
                        candidate = candidate.lstrip("\t")
                    if candidate == name:
                        terminated = True
                        break
                    body.append(raw)
                if not terminated:
                    raise DockerfileError(f"unterminated heredoc {name}", start)
                content = "".join(body)
                if chomp:
                    content = _LEADING_TABS.sub("", content)
                inst.heredocs.append((name, content))
                inst.heredoc_expand[name] = expand_
            _check_heredocs(inst)
        inst.end_line = current
        out.append(inst)
    if not out:
        raise DockerfileError("file with no instructions")
    return out


def _may_have_heredocs(inst: Instruction) -> bool:
    if inst.keyword == "ONBUILD":
        trigger = _WHITESPACE.split(inst.args.strip(), 1)
        if trigger[0].upper() not in _HEREDOC_FORMS:
            return False
        rest = _extract_flags(trigger[1], inst.escape)[0].strip() if len(trigger) > 1 else ""
        return _json_array(rest) is None
    return inst.keyword in _HEREDOC_FORMS and inst.json is None


def _check_heredocs(inst: Instruction) -> None:
    if inst.keyword == "ONBUILD" and inst.heredocs:
        inst.args += "".join(f"\n{body}{name}" for name, body in inst.heredocs)


# --- one instruction (buildkit line_parsers.go and instructions/parse.go) -------------------

def _instruction(line: str, number: int, escape: str) -> Instruction:
    stripped = line.strip()
    parts = _WHITESPACE.split(stripped, 1)
    word = parts[0]
    keyword = word.upper()
    raw_flags: list[str] = []
    args = ""
    if len(parts) == 2:
        args, raw_flags = _extract_flags(parts[1], escape)
        args = args.strip()
    if keyword not in KNOWN or not word.isascii():
        raise DockerfileError(f"unknown instruction: {word}", number)
    inst = Instruction(keyword, args, None, {}, number, stripped, escape=escape)
    try:
        _check(inst, raw_flags)
    except DockerfileError as e:
        raise DockerfileError(e.reason, number) from None
    return inst


def _parse_flags(inst: Instruction, raw_flags: list[str], allowed: dict[str, str]) -> None:
    for arg in raw_flags:
        if arg == "--":
            break
        name_part, eq, value = arg.partition("=")
        name = name_part[2:]
        kind = allowed.get(name)
        if kind is None:
            hint = f" (did you mean --{_suggest(name, allowed)}?)" if _suggest(name, allowed) else ""
            raise DockerfileError(f"unknown flag: {name_part}{hint}")
        if name in inst.flags and kind != _STRINGS:
            raise DockerfileError(f"duplicate flag specified: {name_part}")
        if kind == _BOOL:
            if eq and value == "":
                raise DockerfileError(f"missing a value on flag: {name_part}")
            if value.lower() not in ("true", "false", ""):
                raise DockerfileError(f"expecting boolean value for flag {name_part}, not: {value}")
            value = "false" if value.lower() == "false" else "true"
        elif not eq:
            raise DockerfileError(f"missing a value on flag: {name_part}")
        inst.flags[name] = value
        inst.flag_values.setdefault(name, []).append(value)
        note = _NOTES.get((inst.keyword, name))
        if note:
            inst.warnings.append(note)
        if inst.keyword == "RUN":
            inst.warnings.append(f"RUN --{name} is a BuildKit option: the classic builder refuses it")


def _suggest(name: str, allowed: dict[str, str]) -> str | None:
    import difflib
    close = difflib.get_close_matches(name, list(allowed), n=1, cutoff=0.6)
    return close[0] if close else None


def _check(inst: Instruction, raw_flags: list[str]) -> None:
    keyword, args = inst.keyword, inst.args
    if keyword in _JSON_FORMS:
        parsed = _json_array(args)
        if parsed is not None:
            if not all(isinstance(p, str) for p in parsed):
                raise DockerfileError("when using JSON array syntax, arrays must be comprised of strings only")
            inst.json = parsed
        elif args.lstrip().startswith("["):
            inst.warnings.append(f"{keyword} arguments look like JSON but are not a JSON array of strings: "
                                 "they are taken as shell form")
    if keyword == "HEALTHCHECK":
        _check_healthcheck(inst, raw_flags)
        return
    if keyword == "STOPSIGNAL":
        if raw_flags:                       # Docker does not read STOPSIGNAL's options at all
            inst.warnings.append(f"STOPSIGNAL ignores {' '.join(raw_flags)}")
    else:
        _parse_flags(inst, raw_flags, _FLAGS.get(keyword, {}))
    if keyword in ("ENV", "LABEL"):
        _key_value_pairs(inst)
    elif keyword == "ARG":
        _arg_pairs(inst)
    elif keyword in ("COPY", "ADD"):
        found = _raw_words(inst)
        if len(found) < 2:
            raise DockerfileError(f"{keyword} requires at least two arguments, but only one was provided. "
                                  "Destination could not be determined")
        if _heredoc(found[-1]) is not None:
            raise DockerfileError(f"{keyword} cannot accept a heredoc as a destination")
    elif keyword == "FROM":
        _stage_name(_raw_words(inst))
    elif keyword in ("MAINTAINER", "WORKDIR", "USER", "STOPSIGNAL"):
        if not args:
            raise DockerfileError(f"{keyword} requires exactly one argument")
    elif keyword in ("EXPOSE", "VOLUME", "ONBUILD"):
        if not args or (inst.json is not None and not inst.json):
            raise DockerfileError(f"{keyword} requires at least one argument")
        if keyword == "VOLUME" and any(not v.strip() for v in _raw_words(inst)):
            raise DockerfileError("VOLUME specified can not be an empty string")
        if keyword == "ONBUILD":
            _check_trigger(inst)
    elif keyword == "SHELL":
        if inst.json is None and args:
            raise DockerfileError("SHELL requires the arguments to be in JSON form")
        if not inst.json:
            raise DockerfileError("SHELL requires at least one argument")


def _check_trigger(inst: Instruction) -> None:
    trigger = _WHITESPACE.split(inst.args, 1)[0].upper()
    if trigger == "ONBUILD":
        raise DockerfileError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if trigger in ("MAINTAINER", "FROM"):
        raise DockerfileError(f"{trigger} isn't allowed as an ONBUILD trigger")
    try:
        _instruction(inst.args, inst.line, inst.escape)
    except DockerfileError as e:            # Docker finds out only in the child build
        inst.warnings.append(f"this ONBUILD trigger will fail in builds FROM this image: {e.reason}")


def _check_healthcheck(inst: Instruction, raw_flags: list[str]) -> None:
    first = _WHITESPACE.split(inst.args, 1) if inst.args else []
    if not first:
        raise DockerfileError("HEALTHCHECK requires at least one argument")
    kind = first[0].upper()
    rest = first[1].strip() if len(first) > 1 else ""
    if kind == "NONE":
        if rest:
            raise DockerfileError("HEALTHCHECK NONE takes no arguments")
        return
    _parse_flags(inst, raw_flags, _FLAGS["HEALTHCHECK"])
    if kind != "CMD":
        raise DockerfileError(f"Unknown type {_go_quote(first[0].upper())} in HEALTHCHECK (try CMD)")
    parsed = _json_array(rest)
    if parsed is not None:
        if not all(isinstance(p, str) for p in parsed):
            raise DockerfileError("when using JSON array syntax, arrays must be comprised of strings only")
        inst.json = parsed
    if not rest or (parsed is not None and not parsed):
        raise DockerfileError("Missing command after HEALTHCHECK CMD")
    for name in ("interval", "timeout", "start-period", "start-interval"):
        _interval(inst.flags.get(name, ""), name)
    retries = inst.flags.get("retries", "")
    if retries:
        try:
            count = int(retries, 10)
        except ValueError:
            raise DockerfileError(f'strconv.ParseInt: parsing {_go_quote(retries)}: invalid syntax') from None
        if count < 0:
            raise DockerfileError(f"--retries cannot be negative ({count})")


def _interval(text: str, name: str) -> int:
    if not text:
        return 0
    ns = parse_duration(text)
    if ns == 0:
        return 0
    if ns < 1_000_000:
        raise DockerfileError(f'Interval "{name}" cannot be less than 1ms')
    return ns


_DURATION_UNITS = {"ns": 1, "us": 1_000, "\u00b5s": 1_000, "\u03bcs": 1_000, "ms": 1_000_000,
                   "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}
_DURATION_PART = re.compile(r"(\d*)(?:\.(\d*))?([^\d.]*)")


def parse_duration(text: str) -> int:
    """Go's time.ParseDuration ("1m30s", "1.5h", "300ms"), in nanoseconds."""
    s, negative = text, False
    if s[:1] in ("+", "-"):
        negative, s = s[0] == "-", s[1:]
    if s == "0":
        return 0
    if not s:
        raise DockerfileError(f"time: invalid duration {_go_quote(text)}")
    total = Decimal(0)
    while s:
        match = _DURATION_PART.match(s)
        whole, fraction, unit = match.group(1), match.group(2), match.group(3)
        if not whole and not fraction:
            raise DockerfileError(f"time: invalid duration {_go_quote(text)}")
        if not unit:
            raise DockerfileError(f"time: missing unit in duration {_go_quote(text)}")
        if unit not in _DURATION_UNITS:
            raise DockerfileError(f"time: unknown unit {_go_quote(unit)} in duration {_go_quote(text)}")
        number = Decimal(whole or "0") + (Decimal("0." + fraction) if fraction else Decimal(0))
        total += number * _DURATION_UNITS[unit]
        s = s[match.end():]
    ns = int(total)
    return -ns if negative else ns


def healthcheck(inst: Instruction) -> dict:
    """The image config's Healthcheck of a HEALTHCHECK instruction, as Docker writes it:
    {"Test": ["NONE"]}, or {"Test": ["CMD", ...] / ["CMD-SHELL", "..."], "Interval": ns, ...}
    with the zero durations and retries left out."""
    first = _WHITESPACE.split(inst.args, 1)
    if first[0].upper() == "NONE":
        return {"Test": ["NONE"]}
    rest = first[1].strip() if len(first) > 1 else ""
    check: dict = {"Test": ["CMD", *inst.json] if inst.json is not None else ["CMD-SHELL", rest]}
    for name, key in (("interval", "Interval"), ("timeout", "Timeout"), ("start-period", "StartPeriod"),
                      ("start-interval", "StartInterval")):
        value = _interval(inst.flags.get(name, ""), name)
        if value:
            check[key] = value
    if inst.flags.get("retries"):
        check["Retries"] = int(inst.flags["retries"])
    return check


def _stage_name(parts: list[str]) -> str | None:
    if len(parts) == 3 and parts[1].lower() == "as":
        name = parts[2].lower()
        if not _STAGE_NAME.match(name):
            raise DockerfileError(f"invalid name for build stage: {_go_quote(parts[2])}, name can't start with a "
                                  "number or contain symbols")
        return name
    if len(parts) != 1:
        raise DockerfileError("FROM requires either one or three arguments")
    return None


def _stage(index: int, inst: Instruction) -> Stage:
    parts = _raw_words(inst)
    return Stage(index, _stage_name(parts), parts[0], inst.flags.get("platform") or None, [], inst)


def _raw_words(inst: Instruction) -> list[str]:
    """The argument words as the parser leaves them (quotes kept, nothing expanded)."""
    if inst.json is not None and inst.keyword != "HEALTHCHECK":
        return list(inst.json)
    if inst.keyword in ("ADD", "COPY", "VOLUME", "FROM", "EXPOSE"):
        return _WHITESPACE.split(inst.args) if inst.args else []
    return [inst.args] if inst.args else []


def _key_value_pairs(inst: Instruction) -> list[tuple[str, str]]:
    found = _parse_words(inst.args, inst.escape)
    if not found:
        raise DockerfileError(f"{inst.keyword} requires at least one argument")
    if "=" not in found[0]:
        parts = _WHITESPACE.split(inst.args, 1)
        if len(parts) < 2:
            raise DockerfileError(f"{inst.keyword} must have two arguments")
        pairs = [(parts[0], parts[1])]
    else:
        pairs = []
        for word in found:
            if "=" not in word:
                raise DockerfileError(f"Syntax error - can't find = in {_go_quote(word)}. "
                                      "Must be of the form: name=value")
            key, _, value = word.partition("=")
            pairs.append((key, value))
    if any(not key for key, _ in pairs):
        raise DockerfileError(f"{inst.keyword} names can not be blank")
    return pairs


def _arg_pairs(inst: Instruction) -> list[tuple[str, str | None]]:
    found = _parse_words(inst.args, inst.escape)
    if not found:
        raise DockerfileError("ARG requires at least one argument")
    pairs: list[tuple[str, str | None]] = []
    for word in found:
        if "=" in word:
            key, _, value = word.partition("=")
            if not key:
                raise DockerfileError("ARG names can not be blank")
            pairs.append((key, value))
        else:
            pairs.append((word, None))
    return pairs


# --- what the builder asks of an instruction --------------------------------------------------

def _word(inst: Instruction, text: str, env) -> str:
    try:
        return _Shell(inst.escape).word(text, env)
    except DockerfileError as e:
        raise DockerfileError(e.reason, inst.line) from None


def key_values(inst: Instruction, env: dict[str, str]) -> list[tuple[str, str | None]]:
    """ENV/LABEL pairs, or ARG (name, default or None), keys and values expanded from `env`
    (all with the values from before the instruction, as Docker does)."""
    try:
        if inst.keyword in ("ENV", "LABEL"):
            pairs: list = _key_value_pairs(inst)
        elif inst.keyword == "ARG":
            pairs = _arg_pairs(inst)
        else:
            raise ValueError(f"key_values() is for ENV, LABEL and ARG, not {inst.keyword}")
    except DockerfileError as e:
        raise DockerfileError(e.reason, inst.line) from None
    return [(_word(inst, key, env), None if value is None else _word(inst, value, env)) for key, value in pairs]


def words(inst: Instruction, env: dict[str, str]) -> list[str]:
    """The arguments of COPY/ADD/VOLUME/EXPOSE/FROM, each expanded (a heredoc source such as
    `<<EOF` is left as written: see `sources_and_dest`); of other instructions, the exec
    form or [args], expanded only if Docker expands that instruction."""
    if inst.keyword in ("ENV", "LABEL", "ARG"):
        raise ValueError(f"use key_values() for {inst.keyword}")
    raw = _raw_words(inst)
    if inst.keyword not in EXPANDED:
        return raw
    if inst.keyword == "EXPOSE":
        out: list[str] = []
        for word in raw:
            try:
                out += _Shell(inst.escape).words(word, env)
            except DockerfileError as e:
                raise DockerfileError(e.reason, inst.line) from None
        return out
    if inst.keyword in ("COPY", "ADD"):
        return [w if inst.json is None and i < len(raw) - 1 and _heredoc(w) is not None else _word(inst, w, env)
                for i, w in enumerate(raw)]
    return [_word(inst, w, env) for w in raw]


def flag(inst: Instruction, name: str, env: dict[str, str]) -> str | None:
    """An option's value, expanded as Docker expands it (COPY/ADD --chown, --chmod,
    --checksum); None if the option is not given."""
    if name not in inst.flags:
        return None
    value = inst.flags[name]
    if inst.keyword in ("COPY", "ADD") and name in ("chown", "chmod", "checksum"):
        return _word(inst, value, env)
    return value


def sources_and_dest(inst: Instruction, env: dict[str, str]) -> tuple[list[str], list[tuple[str, str]], str]:
    """COPY/ADD: (source paths, [(name, content)] of heredoc sources, destination), expanded."""
    found = words(inst, env)
    sources: list[str] = []
    inline: list[tuple[str, str]] = []
    for word in found[:-1]:
        doc = _heredoc(word) if inst.json is None else None
        if doc is not None:
            inline.append((doc[0], heredoc_content(inst, doc[0], env)))
        else:
            sources.append(word)
    return sources, inline, found[-1]


def heredoc_content(inst: Instruction, name: str, env: dict[str, str]) -> str:
    """A heredoc's body; that of an unquoted marker (<<EOF, not <<"EOF") with its variables
    and backslash escapes processed (quotes kept), as BuildKit does for COPY."""
    body = dict(inst.heredocs)[name]
    if not inst.heredoc_expand.get(name):
        return body
    try:
        return _Shell("\\", skip_quotes=True).word(body, env)
    except DockerfileError as e:
        raise DockerfileError(e.reason, inst.line) from None


def shell_command(inst: Instruction) -> str:
    """The text a shell-form RUN/CMD/ENTRYPOINT hands to the shell (`sh -c <text>`). A RUN
    whose command is a single heredoc runs the heredoc's body; other heredocs are given to
    the shell after the command line, so that the shell reads them (BuildKit's rule; a body
    starting with #! should rather be written to a file and run, which is left to the caller)."""
    if not inst.heredocs:
        return inst.args
    if len(inst.heredocs) == 1 and _heredoc(inst.args) is not None:
        return inst.heredocs[0][1]
    return inst.args + "".join(f"\n{body}{name}" for name, body in inst.heredocs)
