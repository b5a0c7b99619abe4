"""Health checks' pure rules (dockerd's): the container's HEALTHCHECK merged over the image's,
validation, defaults and intervals, what a probe's result does to State.Health, docker ps's
suffix, the probe's output cut, Go's duration text; and the CLI's --health-* options."""

from __future__ import annotations

import pytest

from orlop.cli import containeropts, units
from orlop.cli.errors import CommandError
from orlop.cli.flags import UsageError, parse
from orlop.containers import healthcheck
from orlop.containers.healthcheck import SECOND, record_result
from orlop.errors import InvalidParameter

MS = 1_000_000
IMAGE = {"Test": ["CMD-SHELL", "image-check"], "Interval": 2 * SECOND, "Timeout": 3 * SECOND, "Retries": 4,
         "StartPeriod": 5 * SECOND, "StartInterval": 6 * SECOND}


def test_merge_takes_the_images_fields_the_container_leaves_unset():
    assert healthcheck.merge_config(None, IMAGE) == IMAGE
    assert healthcheck.merge_config(None, None) is None
    own = {"Test": ["CMD", "true"], "Interval": 300 * MS}
    assert healthcheck.merge_config(own, None) == own
    merged = healthcheck.merge_config({"Test": ["CMD-SHELL", "mine"], "Retries": 1}, IMAGE)
    assert merged == {**IMAGE, "Test": ["CMD-SHELL", "mine"], "Retries": 1}
    # only durations given (--health-interval without --health-cmd): the image's command stays
    assert healthcheck.merge_config({"Interval": SECOND}, IMAGE)["Test"] == ["CMD-SHELL", "image-check"]
    disabled = healthcheck.merge_config({"Test": ["NONE"]}, IMAGE)
    assert disabled["Test"] == ["NONE"] and not healthcheck.enabled(disabled)


def test_enabled_and_the_probes_command():
    assert not healthcheck.enabled(None) and not healthcheck.enabled({}) and not healthcheck.enabled({"Test": []})
    assert not healthcheck.enabled({"Test": ["NONE"]}) and not healthcheck.enabled({"Test": ["BOGUS", "x"]})
    assert healthcheck.probe_argv({"Test": ["CMD", "curl", "-f", "x"]}, None) == ["curl", "-f", "x"]
    assert healthcheck.probe_argv({"Test": ["CMD-SHELL", "a && b"]}, None) == ["/bin/sh", "-c", "a && b"]
    assert healthcheck.probe_argv({"Test": ["CMD-SHELL", "a"]}, ["/bin/bash", "-ec"]) == ["/bin/bash", "-ec", "a"]
    assert healthcheck.probe_argv({"Test": ["CMD"]}, None) == []


@pytest.mark.parametrize("config, message", [
    ({"Interval": 999_999}, "Interval in Healthcheck cannot be less than 1ms"),
    ({"Timeout": -SECOND}, "Timeout in Healthcheck cannot be less than 1ms"),
    ({"StartPeriod": 5}, "StartPeriod in Healthcheck cannot be less than 1ms"),
    ({"StartInterval": 1}, "StartInterval in Healthcheck cannot be less than 1ms"),
    ({"Retries": -1}, "Retries in Healthcheck cannot be negative"),
    ({"Test": "true"}, "Test"),
    ({"Interval": "30s"}, "Interval"),
    ("CMD true", "Healthcheck"),
])
def test_validation_refuses_what_dockerd_refuses(config, message):
    with pytest.raises(InvalidParameter, match=message):
        healthcheck.validate_config(config)


def test_validation_accepts_zero_and_minimums():
    healthcheck.validate_config(None)
    healthcheck.validate_config({"Test": ["NONE"]})
    healthcheck.validate_config({"Interval": 0, "Timeout": MS, "Retries": 0})


def test_defaults_and_the_interval_before_the_next_probe():
    assert healthcheck.setting({}, "Interval") == 30 * SECOND
    assert healthcheck.setting({}, "Timeout") == 30 * SECOND
    assert healthcheck.setting({}, "Retries") == 3
    assert healthcheck.setting({}, "StartPeriod") == 0
    assert healthcheck.setting({}, "StartInterval") == 5 * SECOND
    config = {"Interval": 10 * SECOND, "StartPeriod": 60 * SECOND, "StartInterval": SECOND}
    assert healthcheck.next_interval(config, "starting", 2 * SECOND) == SECOND  # within the start period
    assert healthcheck.next_interval(config, "healthy", 2 * SECOND) == 10 * SECOND
    assert healthcheck.next_interval(config, "starting", 61 * SECOND) == 10 * SECOND
    assert healthcheck.next_interval({}, "starting", 0) == 30 * SECOND  # no start period: the interval


def _result(code: int, output: str = "") -> dict:
    return {"Start": "s", "End": "e", "ExitCode": code, "Output": output}


def test_failures_count_to_retries_and_a_success_resets():
    health = {"Status": "starting", "FailingStreak": 0, "Log": []}
    config = {"Retries": 2}
    assert not record_result(health, _result(1), config, 10 * SECOND)
    assert health["Status"] == "starting" and health["FailingStreak"] == 1
    assert record_result(health, _result(1), config, 11 * SECOND)
    assert health["Status"] == "unhealthy" and health["FailingStreak"] == 2
    assert not record_result(health, _result(-1), config, 12 * SECOND)
    assert health["FailingStreak"] == 3
    assert record_result(health, _result(0, "ok"), config, 13 * SECOND)
    assert health["Status"] == "healthy" and health["FailingStreak"] == 0
    assert [r["ExitCode"] for r in health["Log"]] == [1, 1, -1, 0]


def test_the_start_period_forgives_failures_until_the_first_success():
    health = {"Status": "starting", "FailingStreak": 0, "Log": []}
    config = {"Retries": 1, "StartPeriod": 10 * SECOND}
    for _ in range(4):
        assert not record_result(health, _result(1), config, 5 * SECOND)
    assert health["Status"] == "starting" and health["FailingStreak"] == 0
    assert record_result(health, _result(0), config, 6 * SECOND)  # a success within it counts
    assert health["Status"] == "healthy"
    assert record_result(health, _result(1), config, 7 * SECOND)  # once healthy, failures count
    assert health["Status"] == "unhealthy"
    fresh = {"Status": "starting", "FailingStreak": 0, "Log": []}
    assert record_result(fresh, _result(1), config, 10 * SECOND)  # after it, they count
    assert fresh["Status"] == "unhealthy"


def test_the_log_keeps_the_last_five():
    health = {"Status": "starting", "FailingStreak": 0, "Log": []}
    for i in range(8):
        record_result(health, _result(0, str(i)), {}, 0)
    assert [r["Output"] for r in health["Log"]] == ["3", "4", "5", "6", "7"]


def test_ps_suffix_and_filter_values():
    assert healthcheck.status_suffix({}) == ""
    assert healthcheck.status_suffix({"Health": {"Status": "starting"}}) == " (health: starting)"
    assert healthcheck.status_suffix({"Health": {"Status": "healthy"}}) == " (healthy)"
    assert healthcheck.status_suffix({"Health": {"Status": "unhealthy"}}) == " (unhealthy)"
    assert healthcheck.status_of({}) == "none" and healthcheck.status_of({"Health": {"Status": ""}}) == "unhealthy"
    for value in ("none", "starting", "healthy", "unhealthy"):
        healthcheck.check_filter_value(value)
    with pytest.raises(InvalidParameter, match="invalid filter 'health=ill'"):
        healthcheck.check_filter_value("ill")


def test_output_is_cut_at_4096_bytes():
    buffer = healthcheck.OutputBuffer()
    buffer.write(b"a" * 4000)
    assert buffer.text() == "a" * 4000
    buffer.write(b"b" * 200)
    buffer.write(b"c")
    assert buffer.text() == "a" * 4000 + "b" * 96 + "..."
    assert healthcheck.OutputBuffer().text() == ""


@pytest.mark.parametrize("ns, text", [
    (0, "0s"), (500, "500ns"), (1500, "1.5µs"), (300 * MS, "300ms"), (1_500_000, "1.5ms"), (SECOND, "1s"),
    (1_500 * MS, "1.5s"), (30 * SECOND, "30s"), (90 * SECOND, "1m30s"), (3600 * SECOND, "1h0m0s"),
    (3661 * SECOND + 500 * MS, "1h1m1.5s"), (-2 * SECOND, "-2s"),
])
def test_go_duration_text(ns, text):
    assert healthcheck.go_duration(ns) == text


@pytest.mark.parametrize("text, ns", [
    ("300ms", 300 * MS), ("1.5s", 1_500 * MS), ("1m30s", 90 * SECOND), ("1h", 3600 * SECOND), ("0", 0),
    ("2us", 2000), ("2µs", 2000), (".5s", 500 * MS), ("-1s", -SECOND), ("0.1s", 100 * MS), ("10ns", 10),
])
def test_go_duration_parsing_is_exact(text, ns):
    assert units.parse_duration_ns(text) == ns


@pytest.mark.parametrize("text, message", [
    ("x", 'time: invalid duration "x"'), ("1", 'time: missing unit in duration "1"'),
    ("1d", 'time: unknown unit "d" in duration "1d"'), ("", 'time: invalid duration ""'),
    ("1.2.3s", 'time: invalid duration "1.2.3s"'),
])
def test_go_duration_parsing_errors(text, message):
    with pytest.raises(ValueError, match=message):
        units.parse_duration_ns(text)


def _create_body(*argv: str) -> dict:
    opts, args = parse(containeropts.RUN_SPEC, [*argv, "busybox"])
    return containeropts.build(opts, args, detach=True, console_size=None)


def test_health_options_make_the_docker_clis_healthcheck():
    body = _create_body("--health-cmd", "curl -f localhost", "--health-interval", "300ms", "--health-retries", "2",
                        "--health-timeout", "1s", "--health-start-period", "1m", "--health-start-interval", "2s")
    assert body["Healthcheck"] == {"Test": ["CMD-SHELL", "curl -f localhost"], "Interval": 300 * MS,
                                   "Timeout": SECOND, "StartPeriod": 60 * SECOND, "StartInterval": 2 * SECOND,
                                   "Retries": 2}
    keys = list(body)
    assert keys.index("Cmd") + 1 == keys.index("Healthcheck") == keys.index("Image") - 1  # Go's field order
    assert _create_body("--health-interval", "5s")["Healthcheck"] == {"Interval": 5 * SECOND}
    assert _create_body("--no-healthcheck")["Healthcheck"] == {"Test": ["NONE"]}
    assert "Healthcheck" not in _create_body()


@pytest.mark.parametrize("argv, error, message", [
    (["--no-healthcheck", "--health-cmd", "true"], CommandError, "--no-healthcheck conflicts with --health-* options"),
    (["--health-timeout", "-1s"], CommandError, "--health-timeout cannot be negative"),
    (["--health-retries", "-2"], CommandError, "--health-retries cannot be negative"),
    (["--health-interval", "soon"], UsageError, 'invalid argument "soon" for "--health-interval" flag: '
                                                'time: invalid duration "soon"'),
])
def test_health_option_errors(argv, error, message):
    with pytest.raises(error) as caught:
        _create_body(*argv)
    assert str(caught.value) == message
