"""`--format` as the docker CLI reads it, and its tables.

A format is "table" (the command's default columns), "json" (one JSON object a line),
"table <template>" (a header row, then aligned rows) or a bare template (one line per
item). `\\t` and `\\n` typed literally become tab and newline, as docker's formatter does.
Tables are aligned like Go's tabwriter with docker's settings (min width 10, padding 3).
"""

from __future__ import annotations

import sys

from orlop.cli import gojson
from orlop.cli.template import Template, TemplateError


def tabwrite(lines: list[str], minwidth: int = 10, padding: int = 3) -> str:
    """Go's text/tabwriter (tabwidth 1, padchar ' ', no flags): a cell ends at a tab; the
    last cell of a line is not aligned; a column's width is its widest cell + padding,
    at least `minwidth`, over each block of consecutive lines that have that column."""
    rows = [line.split("\t") for line in lines]
    widths_by_row: list[list[int]] = [[] for _ in rows]
    column = 0
    while True:
        any_cell = False
        i = 0
        while i < len(rows):
            if len(rows[i]) - 1 <= column:
                i += 1
                continue
            start = i
            while i < len(rows) and len(rows[i]) - 1 > column:
                i += 1
            width = max(minwidth, max(len(rows[k][column]) + padding for k in range(start, i)))
            for k in range(start, i):
                widths_by_row[k].append(width)
            any_cell = True
        if not any_cell:
            break
        column += 1
    out = []
    for row, widths in zip(rows, widths_by_row, strict=True):
        cells = [cell.ljust(widths[c]) for c, cell in enumerate(row[:-1])]
        out.append("".join(cells) + row[-1])
    return "\n".join(out) + ("\n" if out else "")


class Format:
    """A parsed --format: render(items) gives the whole output."""

    def __init__(self, text: str, default_table: str, headers: dict[str, str]) -> None:
        self.json = text == "json"
        self.table = text == "table" or text.startswith("table ") or text.startswith("table\t")
        if text in ("", "table"):
            source = default_table[len("table"):].strip()
            self.table = True
        elif self.json:
            source = "{{json .}}"
        elif self.table:
            source = text[len("table"):].strip()
        else:
            source = text
        source = source.replace("\\t", "\t").replace("\\n", "\n")
        self.source = source
        self.template = Template(source)
        self.headers = headers

    def uses(self, name: str) -> bool:
        return "." + name in self.source

    def render(self, items: list) -> str:
        lines = []
        if self.table:
            header = self.template.execute(_HeaderContext(self.headers))
            lines.append(header)
        for item in items:
            # "json" marshals the row (HTML-escaped, as Go's json.Marshal); {{json .}} does not escape.
            lines.append(gojson.dumps(dict(sorted(item.items()))) if self.json else self.template.execute(item))
        if self.table:
            expanded = []
            for line in lines:
                expanded.extend(line.split("\n"))
            return tabwrite(expanded)
        return "".join(line + "\n" for line in lines)


class _HeaderContext(dict):
    """What a table's header row is rendered from: every field gives its column title."""

    def __init__(self, headers: dict[str, str]) -> None:
        super().__init__(headers)

    def __contains__(self, key) -> bool:
        return True

    def __getitem__(self, key):
        return _Title(dict.get(self, key, key.upper()))


class _Title(str):
    """A column title; callable so that a field taking arguments (`.Label "k"`) titles too."""

    def __call__(self, *args) -> str:
        return str(self)


def write(text: str) -> None:
    sys.stdout.write(text)


def print_json_line(value) -> None:
    write(gojson.dumps(value) + "\n")


__all__ = ["Format", "TemplateError", "tabwrite", "write"]
