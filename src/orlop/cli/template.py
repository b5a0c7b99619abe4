"""A subset of Go's text/template, as `--format` uses it: `{{.Field.Sub}}`, `{{.}}`, `{{$}}`,
variables, pipelines (`{{.Names | json}}`), `{{if}}`/`{{else}}`/`{{with}}`/`{{range}}`
(with `$k, $v :=`), trim markers `{{-`/`-}}`, comments, and docker's functions: json,
lower, upper, title, split, join, truncate, pad, len, index, print, printf, println, eq, ne,
lt, le, gt, ge, and, or, not.

Values are the API's JSON (dicts, lists, str, int, float, bool, None); a dict value that is
callable takes arguments (ps's `{{.Label "key"}}`). Printing follows Go's fmt %v: maps as
`map[k:v]`, lists as `[a b]`, null as `<no value>`.
"""

from __future__ import annotations

from orlop.cli import gojson


class TemplateError(Exception):
    pass


# -- lexing -------------------------------------------------------------------------------------
def _split(source: str) -> list[tuple[str, str]]:
    """[("text", s) | ("action", s)], trim markers applied."""
    parts: list[tuple[str, str]] = []
    pos = 0
    trim_next = False
    while True:
        start = source.find("{{", pos)
        if start < 0:
            text = source[pos:]
            parts.append(("text", text.lstrip(" \t\r\n") if trim_next else text))
            return parts
        text = source[pos:start]
        if trim_next:
            text = text.lstrip(" \t\r\n")
        inner_start = start + 2
        if source.startswith("- ", inner_start) or source.startswith("-\t", inner_start) or \
                source.startswith("-\n", inner_start):
            text = text.rstrip(" \t\r\n")
            inner_start += 1
        parts.append(("text", text))
        end = _find_close(source, inner_start)
        inner = source[inner_start:end]
        trim_next = False
        if inner.endswith(" -") or inner.endswith("\t-") or inner.endswith("\n-"):
            inner = inner[:-1]
            trim_next = True
        parts.append(("action", inner.strip()))
        pos = end + 2


def _find_close(source: str, pos: int) -> int:
    quote = None
    i = pos
    while i < len(source):
        c = source[i]
        if quote:
            if c == "\\" and quote == '"':
                i += 2
                continue
            if c == quote:
                quote = None
        elif c in "\"`'":
            quote = c
        elif source.startswith("}}", i):
            return i
        i += 1
    raise TemplateError("unclosed action")


def _tokens(action: str) -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    i, n = 0, len(action)
    while i < n:
        c = action[i]
        if c in " \t\r\n":
            i += 1
        elif c == '"':
            j = i + 1
            chars = []
            while j < n and action[j] != '"':
                if action[j] == "\\" and j + 1 < n:
                    esc = action[j + 1]
                    if esc in "ux" and j + 2 < n:
                        width = {"u": 4, "x": 2}[esc]
                        chars.append(chr(int(action[j + 2:j + 2 + width], 16)))
                        j += 2 + width
                        continue
                    chars.append({"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "0": "\0"}.get(esc, esc))
                    j += 2
                    continue
                chars.append(action[j])
                j += 1
            if j >= n:
                raise TemplateError(f"unterminated quoted string in {action!r}")
            out.append(("value", "".join(chars)))
            i = j + 1
        elif c == "`":
            j = action.find("`", i + 1)
            if j < 0:
                raise TemplateError(f"unterminated raw quoted string in {action!r}")
            out.append(("value", action[i + 1:j]))
            i = j + 1
        elif c in "()|,":
            out.append((c, c))
            i += 1
        elif action.startswith(":=", i):
            out.append((":=", ":="))
            i += 2
        elif c == "=":
            out.append(("=", "="))
            i += 1
        else:
            j = i
            while j < n and action[j] not in " \t\r\n()|,\"`" and not action.startswith(":=", j):
                j += 1
            word = action[i:j]
            i = j
            out.append(_word(word))
    return out


def _word(word: str) -> tuple[str, object]:
    if word.startswith("."):
        return ("field", [p for p in word.split(".")[1:] if p])
    if word.startswith("$"):
        name, *fields = word.split(".")
        return ("var", (name, fields))
    if word in ("true", "false"):
        return ("value", word == "true")
    if word == "nil":
        return ("value", None)
    if word[0].isdigit() or (word[0] in "+-" and len(word) > 1):
        try:
            return ("value", int(word, 0))
        except ValueError:
            try:
                return ("value", float(word))
            except ValueError:
                raise TemplateError(f"bad number syntax: {word!r}") from None
    if word[0] == "'" and word[-1] == "'" and len(word) >= 3:
        return ("value", ord(word[1]))
    return ("ident", word)


# -- parsing ------------------------------------------------------------------------------------
class _Node:
    __slots__ = ("kind", "pipe", "body", "alt", "text", "decl")

    def __init__(self, kind: str, pipe=None, text: str = "", decl=None) -> None:
        self.kind, self.pipe, self.text, self.decl = kind, pipe, text, decl
        self.body: list[_Node] = []
        self.alt: list[_Node] | None = None


def _parse_pipeline(tokens: list[tuple[str, object]]):
    """[(kind, value)] -> (declared variable names, [command]); a command is a list of operands."""
    decl: list[str] = []
    if len(tokens) >= 2 and tokens[0][0] == "var" and tokens[1][0] in (":=", "=", ","):
        k = 0
        while k < len(tokens) and tokens[k][0] == "var":
            decl.append(tokens[k][1][0])
            k += 1
            if k < len(tokens) and tokens[k][0] == ",":
                k += 1
        if k >= len(tokens) or tokens[k][0] not in (":=", "="):
            raise TemplateError("expected := after variables")
        tokens = tokens[k + 1:]
    commands, _ = _parse_commands(tokens, 0, False)
    if not commands:
        raise TemplateError("missing value for command")
    return decl, commands


def _parse_commands(tokens, pos: int, nested: bool):
    commands: list[list] = []
    current: list = []
    while pos < len(tokens):
        kind, value = tokens[pos]
        if kind == ")":
            if not nested:
                raise TemplateError("unexpected right paren")
            break
        if kind == "|":
            if not current:
                raise TemplateError("missing command before |")
            commands.append(current)
            current = []
            pos += 1
            continue
        if kind == "(":
            sub, pos = _parse_commands(tokens, pos + 1, True)
            if pos >= len(tokens) or tokens[pos][0] != ")":
                raise TemplateError("unclosed left paren")
            current.append(("pipe", sub))
            pos += 1
            continue
        if kind in (":=", "=", ","):
            raise TemplateError(f"unexpected {value!r}")
        current.append((kind, value))
        pos += 1
    if current:
        commands.append(current)
    return commands, pos


def parse(source: str) -> list[_Node]:
    root = _Node("list")
    # Each entry: (node, the list new nodes go to: its body, or its alternative after {{else}}).
    stack: list[tuple[_Node, list[_Node]]] = [(root, root.body)]
    for kind, text in _split(source):
        if kind == "text":
            if text:
                stack[-1][1].append(_Node("text", text=text))
            continue
        if text.startswith("/*"):
            continue
        keyword = text.split(None, 1)[0] if text else ""
        rest = text[len(keyword):].strip()
        if keyword in ("if", "with", "range"):
            decl, pipe = _parse_pipeline(_tokens(rest))
            node = _Node(keyword, pipe, decl=decl)
            stack[-1][1].append(node)
            stack.append((node, node.body))
        elif keyword == "else":
            top = stack[-1][0]
            if top.kind not in ("if", "with", "range") or top.alt is not None:
                raise TemplateError("unexpected {{else}}")
            top.alt = []
            stack[-1] = (top, top.alt)
            if rest:  # {{else if …}} / {{else with …}}: a nested node that {{end}} closes too
                sub_keyword, _, sub_rest = rest.partition(" ")
                if sub_keyword not in ("if", "with"):
                    raise TemplateError(f"unexpected {rest!r} in else")
                decl, pipe = _parse_pipeline(_tokens(sub_rest))
                node = _Node(sub_keyword, pipe, text="chained", decl=decl)
                top.alt.append(node)
                stack.append((node, node.body))
        elif keyword == "end":
            while True:
                if len(stack) == 1:
                    raise TemplateError("unexpected {{end}}")
                node, _ = stack.pop()
                if node.text != "chained":
                    break
        elif keyword in ("define", "template", "block", "break", "continue"):
            raise TemplateError(f"{{{{{keyword}}}}} is not supported")
        else:
            decl, pipe = _parse_pipeline(_tokens(text))
            stack[-1][1].append(_Node("action", pipe, decl=decl))
    if len(stack) != 1:
        raise TemplateError("unexpected EOF: missing {{end}}")
    return root.body


# -- evaluation ---------------------------------------------------------------------------------
def _printable(value) -> str:
    if value is None:
        return "<no value>"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return gojson.number(value) if isinstance(value, float) else str(value)
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_inner(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list | tuple):
        return "[" + " ".join(_inner(v) for v in value) + "]"
    return str(value)


def _inner(value) -> str:
    return "<nil>" if value is None else _printable(value)


def _truth(value) -> bool:
    if value is None or value is False:
        return False
    if isinstance(value, int | float | str | list | tuple | dict):
        return bool(value)
    return True


def _json(value) -> str:
    return gojson.dumps(value, escape_html=False)  # docker's template json: SetEscapeHTML(false)


def _length(value) -> int:
    if value is None:
        raise TemplateError("len of nil pointer")
    return len(value)


def _index(value, *keys):
    for key in keys:
        if isinstance(value, dict):
            value = value.get(key)
        elif isinstance(value, list | tuple | str):
            value = value[int(key)]
        else:
            raise TemplateError(f"can't index item of type {type(value).__name__}")
    return value


def _printf(fmt: str, *args) -> str:
    out = []
    i = 0
    args_iter = iter(args)
    while i < len(fmt):
        c = fmt[i]
        if c != "%":
            out.append(c)
            i += 1
            continue
        j = i + 1
        while j < len(fmt) and fmt[j] in "-+# 0123456789.":
            j += 1
        if j >= len(fmt):
            out.append(fmt[i:])
            break
        verb, flags = fmt[j], fmt[i + 1:j]
        i = j + 1
        if verb == "%":
            out.append("%")
            continue
        arg = next(args_iter, None)
        if verb in "vs":
            out.append(("%" + flags + "s") % _printable(arg))
        elif verb == "q":
            out.append(gojson.string(str(arg), escape_html=False))
        elif verb in "dxXo":
            out.append(("%" + flags + verb) % int(arg))
        elif verb in "feEgG":
            out.append(("%" + flags + verb) % float(arg))
        elif verb == "t":
            out.append(_printable(bool(arg)))
        else:
            out.append(f"%!{verb}({_printable(arg)})")
    return "".join(out)


def _compare(op):
    def check(a, *others):
        if op == "eq":
            return any(a == b for b in others)
        b = others[0]
        return {"ne": a != b, "lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b}[op]
    return check


def _and(*values):
    for v in values:
        if not _truth(v):
            return v
    return values[-1]


def _or(*values):
    for v in values:
        if _truth(v):
            return v
    return values[-1]


def _truncate(text, length) -> str:
    text = _printable(text)
    return text[:int(length)] if len(text) > int(length) else text


def _pad(text, left, right) -> str:
    return " " * int(left) + _printable(text) + " " * int(right)


def _join(values, sep: str) -> str:
    return sep.join(_printable(v) for v in (values or []))


def _title(text: str) -> str:
    return " ".join(w[:1].upper() + w[1:] for w in _printable(text).split(" "))


FUNCTIONS = {
    "json": _json, "lower": lambda s: _printable(s).lower(), "upper": lambda s: _printable(s).upper(),
    "title": _title, "split": lambda s, sep: _printable(s).split(sep), "join": _join,
    "truncate": _truncate, "pad": _pad, "len": _length, "index": _index,
    "print": lambda *a: "".join(_printable(v) for v in a),
    "println": lambda *a: " ".join(_printable(v) for v in a) + "\n", "printf": _printf,
    "eq": _compare("eq"), "ne": _compare("ne"), "lt": _compare("lt"), "le": _compare("le"),
    "gt": _compare("gt"), "ge": _compare("ge"), "and": _and, "or": _or, "not": lambda v: not _truth(v),
    "html": lambda s: _printable(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"),
}


class Template:
    def __init__(self, source: str) -> None:
        self.source = source
        try:
            self.nodes = parse(source)
        except (TemplateError, ValueError, IndexError) as e:
            raise TemplateError(f"template parsing error: {e}") from None

    def execute(self, data) -> str:
        out: list[str] = []
        try:
            _run(self.nodes, data, {"$": data}, out)
        except TemplateError as e:
            raise TemplateError(f"template: executing: {e}") from None
        except (TypeError, ValueError, KeyError, IndexError) as e:
            raise TemplateError(f"template: executing: error calling function: {e}") from None
        return "".join(out)


def _field(value, names: list[str], args: list | None = None):
    for i, name in enumerate(names):
        if isinstance(value, dict):
            if name not in value:
                raise TemplateError(f"at <.{'.'.join(names[:i + 1])}>: map has no entry for key \"{name}\"")
            value = value[name]
        elif value is None:
            raise TemplateError(f"at <.{'.'.join(names[:i + 1])}>: nil pointer evaluating .{name}")
        else:
            raise TemplateError(f"at <.{'.'.join(names[:i + 1])}>: can't evaluate field {name} in type "
                                f"{type(value).__name__}")
        if callable(value) and (args is None or i < len(names) - 1):
            value = value()
    if args is not None and callable(value):
        return value(*args)
    if args:
        raise TemplateError(f"{names[-1]} is not a method but has arguments")
    return value


def _operand(op, dot, variables):
    kind, value = op
    if kind == "value":
        return value
    if kind == "field":
        return _field(dot, value) if value else dot
    if kind == "var":
        name, fields = value
        if name not in variables:
            raise TemplateError(f"undefined variable: {name}")
        return _field(variables[name], fields) if fields else variables[name]
    if kind == "pipe":
        return _pipeline(value, dot, variables)
    if kind == "ident":
        if value in FUNCTIONS:
            return FUNCTIONS[value]()
        raise TemplateError(f"function \"{value}\" not defined")
    raise TemplateError(f"unexpected {value!r}")


def _command(command: list, dot, variables, piped: tuple = ()):
    head_kind, head = command[0]
    if head_kind == "ident" and head not in FUNCTIONS:
        raise TemplateError(f"function \"{head}\" not defined")
    args = [_operand(op, dot, variables) for op in command[1:]] + list(piped)
    if head_kind == "ident":
        return FUNCTIONS[head](*args)
    if head_kind == "field" and (len(command) > 1 or piped):
        return _field(dot, head, args)
    if len(command) > 1 or piped:
        value = _operand(command[0], dot, variables)
        if callable(value):
            return value(*args)
        raise TemplateError(f"can't give argument to non-function {command[0][1]!r}")
    return _operand(command[0], dot, variables)


def _pipeline(commands: list, dot, variables):
    value = _command(commands[0], dot, variables)
    for command in commands[1:]:
        value = _command(command, dot, variables, (value,))
    return value


def _run(nodes: list[_Node], dot, variables: dict, out: list[str]) -> None:
    for node in nodes:
        if node.kind == "text":
            out.append(node.text)
        elif node.kind == "action":
            value = _pipeline(node.pipe, dot, variables)
            if node.decl:
                variables[node.decl[0]] = value
            else:
                out.append(_printable(value))
        elif node.kind in ("if", "with"):
            value = _pipeline(node.pipe, dot, variables)
            if _truth(value):
                scope = dict(variables)
                if node.decl:
                    scope[node.decl[-1]] = value
                _run(node.body, value if node.kind == "with" else dot, scope, out)
            elif node.alt is not None:
                _run(node.alt, dot, dict(variables), out)
        elif node.kind == "range":
            value = _pipeline(node.pipe, dot, variables)
            if isinstance(value, dict):
                items = [(k, value[k]) for k in sorted(value)]
            elif isinstance(value, list | tuple):
                items = list(enumerate(value))
            elif isinstance(value, int) and not isinstance(value, bool):
                items = [(i, i) for i in range(value)]
            elif value is None:
                items = []
            else:
                raise TemplateError(f"range can't iterate over {_printable(value)}")
            if not items:
                if node.alt is not None:
                    _run(node.alt, dot, dict(variables), out)
                continue
            for key, item in items:
                scope = dict(variables)
                if len(node.decl) == 1:
                    scope[node.decl[0]] = item
                elif len(node.decl) >= 2:
                    scope[node.decl[0]], scope[node.decl[1]] = key, item
                _run(node.body, item, scope, out)


def render(source: str, data) -> str:
    return Template(source).execute(data)
