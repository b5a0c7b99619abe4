"""Command-line options parsed as the docker CLI's (cobra/pflag) are: `-d`, combined
`-it`, `-e X`, `-eX`, `-e=X`, `--env X`, `--env=X`, `--rm=false`, repeatable list options,
`--` ending the options; for run/create/exec options stop at the first argument (the
container's command keeps its own). Without argparse, which costs ~13 ms to import.
"""

from __future__ import annotations


class UsageError(Exception):
    """A wrong flag (docker exits 125) or a wrong number of arguments (exit 1)."""

    def __init__(self, message: str, status: int = 125, hint: str = "Run") -> None:
        super().__init__(message)
        self.status = status
        self.hint = hint


class HelpRequested(Exception):
    pass


class Flag:
    __slots__ = ("short", "long", "kind", "help", "default", "metavar", "dest", "aliases")

    def __init__(self, short: str | None, long: str, kind: str, help: str, default=None,
                 metavar: str = "", aliases: tuple[str, ...] = ()) -> None:
        self.short, self.long, self.kind, self.help, self.aliases = short, long, kind, help, aliases
        self.default = default if default is not None else ([] if kind == "list" else False if kind == "bool"
                                                             else None)
        self.metavar = metavar or {"string": "string", "list": "list", "int": "int"}.get(kind, "")
        self.dest = long.replace("-", "_")


def flag(names: str, kind: str = "bool", help: str = "", default=None, metavar: str = "") -> Flag:
    """names: "-d, --detach", "--rm", or with aliases "--network, --net"."""
    short = None
    longs = []
    for name in (n.strip() for n in names.split(",")):
        if name.startswith("--"):
            longs.append(name[2:])
        elif name.startswith("-"):
            short = name[1:]
    return Flag(short, longs[0] if longs else short or "", kind, help, default, metavar, tuple(longs[1:]))


class Spec:
    def __init__(self, name: str, usage: str, summary: str, flags: list[Flag], *, interspersed: bool = True,
                 min_args: int = 0, max_args: int | None = None, aliases: str = "") -> None:
        self.name, self.usage, self.summary, self.flags = name, usage, summary, flags
        self.interspersed, self.min_args, self.max_args = interspersed, min_args, max_args
        self.aliases = aliases
        self.by_long = {name: f for f in flags for name in (f.long, *f.aliases)}
        self.by_short = {f.short: f for f in flags if f.short}

    def help_text(self) -> str:
        lines = [f"\nUsage:  {self.usage}\n", self.summary]
        if self.aliases:
            lines += ["", "Aliases:", f"  {self.aliases}"]
        rows = []
        for f in sorted(self.flags + [_HELP], key=lambda f: f.long):
            left = (f"-{f.short}, " if f.short else "    ") + f"--{f.long}"
            if f.kind != "bool":
                left += f" {f.metavar}"
            text = f.help
            if f.default not in (None, False, [], "") and f.kind != "bool":
                text += f' (default "{f.default}")' if isinstance(f.default, str) else f" (default {f.default})"
            rows.append((left, text))
        if rows:
            width = max(len(left) for left, _ in rows)
            lines += ["", "Options:"] + [f"  {left.ljust(width)}   {text}".rstrip() for left, text in rows]
        return "\n".join(lines) + "\n"


_HELP = Flag(None, "help", "bool", "Print usage")


class Options:
    """Parsed option values as attributes (dest names), and which were given."""

    def __init__(self, spec: Spec) -> None:
        self.changed: set[str] = set()
        for f in spec.flags:
            setattr(self, f.dest, list(f.default) if isinstance(f.default, list) else f.default)


def _bool_value(f: Flag, text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "t", "true"):
        return True
    if lowered in ("0", "f", "false"):
        return False
    raise UsageError(f'invalid argument "{text}" for "{_names(f)}" flag: strconv.ParseBool: parsing '
                     f'"{text}": invalid syntax')


def _names(f: Flag) -> str:
    return f"-{f.short}, --{f.long}" if f.short else f"--{f.long}"


def _set(opts: Options, f: Flag, value: str) -> None:
    opts.changed.add(f.dest)
    if f.kind == "bool":
        setattr(opts, f.dest, _bool_value(f, value))
    elif f.kind == "list":
        getattr(opts, f.dest).append(value)
    elif f.kind == "int":
        try:
            setattr(opts, f.dest, int(value))
        except ValueError:
            raise UsageError(f'invalid argument "{value}" for "{_names(f)}" flag: strconv.ParseInt: parsing '
                             f'"{value}": invalid syntax') from None
    else:
        setattr(opts, f.dest, value)


def parse(spec: Spec, argv: list[str]) -> tuple[Options, list[str]]:
    opts = Options(spec)
    args: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            args.extend(argv[i:])
            break
        if not arg.startswith("-") or arg == "-":
            args.append(arg)
            if not spec.interspersed:
                args.extend(argv[i:])
                break
            continue
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            if name == "help":
                raise HelpRequested()
            f = spec.by_long.get(name)
            if f is None:
                raise UsageError(f"unknown flag: --{name}")
            if f.kind == "bool":
                _set(opts, f, value if eq else "true")
            elif eq:
                _set(opts, f, value)
            elif i < len(argv):
                _set(opts, f, argv[i])
                i += 1
            else:
                raise UsageError(f"flag needs an argument: --{name}")
            continue
        shorts = arg[1:]
        while shorts:
            letter, shorts = shorts[0], shorts[1:]
            if letter == "h" and "h" not in spec.by_short:
                raise HelpRequested()
            f = spec.by_short.get(letter)
            if f is None:
                raise UsageError(f"unknown shorthand flag: '{letter}' in -{arg[1:]}")
            if f.kind == "bool":
                if shorts.startswith("="):
                    _set(opts, f, shorts[1:])
                    shorts = ""
                else:
                    _set(opts, f, "true")
                continue
            if shorts:
                _set(opts, f, shorts[1:] if shorts.startswith("=") else shorts)
            elif i < len(argv):
                _set(opts, f, argv[i])
                i += 1
            else:
                raise UsageError(f"flag needs an argument: '{letter}' in -{letter}")
            shorts = ""
    full = "orlop " + spec.name
    if len(args) < spec.min_args:
        word = "argument" if spec.min_args == 1 else "arguments"
        if spec.max_args == spec.min_args:
            message = f"'{full}' requires {spec.min_args} {word}"
        else:
            message = f"'{full}' requires at least {spec.min_args} {word}"
        raise UsageError("orlop: " + message, status=1, hint="See")
    if spec.max_args is not None and len(args) > spec.max_args:
        if spec.max_args == 0:
            message = f"'{full}' accepts no arguments"
        elif spec.max_args == spec.min_args:
            message = f"'{full}' requires {spec.min_args} argument{'s' if spec.min_args > 1 else ''}"
        else:
            message = f"'{full}' requires at most {spec.max_args} argument{'s' if spec.max_args > 1 else ''}"
        raise UsageError("orlop: " + message, status=1, hint="See")
    return opts, args


def command(spec: Spec):
    """Make `fn(cli, opts, args)` a command `run(cli, argv)` that parses `spec` first."""
    def wrap(fn):
        def run(cli, argv: list[str]):
            opts, args = parse(spec, argv)
            return fn(cli, opts, args)
        run.spec = spec
        run.__name__ = fn.__name__
        run.__doc__ = fn.__doc__
        return run
    return wrap
