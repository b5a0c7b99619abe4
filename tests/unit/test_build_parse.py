"""Dockerfile parsing, variable substitution and .dockerignore, as Docker's classic builder."""

from __future__ import annotations

import pytest

from orlop.build.dockerfile import DockerfileError, expand, key_values, parse, words
from orlop.build.ignore import Matcher


def test_stages_args_flags_and_forms():
    meta, stages = parse("ARG V=1\nFROM busybox:${V} AS Base\nCOPY --from=base --chown=1:2 a b /d/\n"
                         'RUN ["echo", "x"]\nRUN echo \\\n  continued\nFROM scratch\nCMD sh\n')
    assert [i.keyword for i in meta] == ["ARG"]
    assert [(s.name, s.base) for s in stages] == [("base", "busybox:${V}"), (None, "scratch")]
    copy, run_exec, run_shell = stages[0].instructions
    assert copy.flags == {"from": "base", "chown": "1:2"} and copy.args == "a b /d/"
    assert run_exec.json == ["echo", "x"] and run_shell.json is None and "continued" in run_shell.args
    assert run_shell.line == 5


@pytest.mark.parametrize("text, message", [
    ("RUN true\n", "before FROM"),
    ("FROM busybox\nFROBNICATE x\n", "unknown instruction"),
    ("FROM busybox\nCOPY --frm=x a b\n", "unknown flag"),
    ("FROM busybox\nONBUILD FROM x\n", "isn't allowed"),
    ("# nothing\n", "no instructions"),
    ("ARG A\n", "no FROM"),
    ("FROM a b\n", "one or three"),
])
def test_errors_name_the_problem_and_line(text, message):
    with pytest.raises(DockerfileError, match=message):
        parse(text)


def test_escape_directive_backtick():
    _, stages = parse("# escape=`\nFROM busybox\nRUN echo a `\n  b\nCOPY C:\\dir /x\n")
    assert "a" in stages[0].instructions[0].args and "b" in stages[0].instructions[0].args
    assert stages[0].instructions[1].args == "C:\\dir /x"


def test_variable_substitution():
    env = {"A": "1", "EMPTY": ""}
    assert expand("$A-${A}-${B:-dflt}-${A:+alt}-${B:+alt}", env) == "1-1-dflt-alt-"
    assert expand("${EMPTY:-d} ${EMPTY-d}", env) == "d "
    assert expand("\\$A costs $$", env) == "$A costs "  # $$ is a special parameter: "" (as Docker)


def test_key_values_and_words():
    _, stages = parse('FROM x\nENV A=1 B="two words" C=$A\nENV OLD legacy value\nLABEL "k.x"=v\nARG N\n'
                      'EXPOSE 80 $P/udp\n')
    env_new, env_old, label, arg, expose = stages[0].instructions
    assert key_values(env_new, {"A": "9"}) == [("A", "1"), ("B", "two words"), ("C", "9")]
    assert key_values(env_old, {}) == [("OLD", "legacy value")]
    assert key_values(label, {}) == [("k.x", "v")]
    assert key_values(arg, {}) == [("N", None)]
    assert words(expose, {"P": "53"}) == ["80", "53/udp"]


def test_dockerignore_semantics():
    m = Matcher(["# comment", "*.log", "/secret/", "!keep.log", "docs/**/*.tmp", "**/*.bak"])
    assert m.excluded("debug.log") and not m.excluded("keep.log") and not m.excluded("sub/debug.log")
    assert m.excluded("secret/key") and m.excluded("docs/x/y/z.tmp") and not m.excluded("docs/x/z.md")
    assert m.excluded("a/b/c.bak") and m.excluded("c.bak")
