"""`orlop-runtime update` without a container: runc's options read into a LinuxResources
delta, merged into the kept resources as runc merges them, and what is then written to a
(fake) cgroup v1 or v2 tree, with runc's v2 translations."""

from __future__ import annotations

import pytest
from test_cgroups import new_v1, new_v2, writes  # noqa: F401 - the fixture

from orlop.linux.cgroups.resources import blkio_weight_to_io_weight, shares_to_weight
from orlop.runtime.update_resources import UpdateError, delta_from_options, merge, ram_in_bytes, to_apply


def options(**given: str) -> dict[str, list[str]]:
    return {name.replace("_", "-"): [value] for name, value in given.items()}


def no_file(path):
    raise AssertionError(f"read {path}")


def test_runcs_flags_become_a_delta():
    delta, warnings = delta_from_options(options(
        memory="64m", memory_swap="128m", memory_reservation="16m", cpu_share="256", cpu_quota="50000",
        cpu_period="100000", cpu_rt_period="1000000", cpu_rt_runtime="-1", cpuset_cpus="0-1", cpuset_mems="0",
        pids_limit="20", blkio_weight="300", cpu_idle="1", cpu_burst="1000", kernel_memory="10m"), no_file)
    assert delta == {
        "blockIO": {"weight": 300},
        "cpu": {"cpus": "0-1", "mems": "0", "idle": 1, "burst": 1000, "period": 100000, "realtimePeriod": 1000000,
                "shares": 256, "quota": 50000, "realtimeRuntime": -1},
        "memory": {"limit": 64 << 20, "swap": 128 << 20, "reservation": 16 << 20},
        "pids": {"limit": 20},
    }
    assert warnings == ["Kernel memory settings are ignored and will be removed"]
    assert delta_from_options(options(cpu_shares="100", memory_swap="-1"), no_file)[0] == {
        "cpu": {"shares": 100}, "memory": {"swap": -1}}


def test_a_resources_file_replaces_every_other_option():
    delta, _ = delta_from_options({"resources": ["-"], "memory": ["1g"]}, lambda path: {"pids": {"limit": 5}})
    assert delta == {"pids": {"limit": 5}}


@pytest.mark.parametrize("given, message", [
    ({"memory": "lots"}, "invalid value for memory: invalid size: 'lots'"),
    ({"cpu-share": "-5"}, 'invalid value for cpu-share: strconv.ParseUint: parsing "-5": invalid syntax'),
    ({"cpu-quota": "x"}, 'invalid value for cpu-quota: strconv.ParseInt'),
    ({"l3-cache-schema": "L3:0=f"}, "Intel RDT/CAT: l3 cache schema is not enabled"),
    ({"mem-bw-schema": "MB:0=70"}, "Intel RDT/MBA: memory bandwidth schema is not enabled"),
])
def test_bad_options_are_named(given, message):
    with pytest.raises(UpdateError, match=message):
        delta_from_options({k: [v] for k, v in given.items()}, no_file)


@pytest.mark.parametrize("text, expected", [
    ("1024", 1024), ("64m", 64 << 20), ("64M", 64 << 20), ("64MiB", 64 << 20), ("64mb", 64 << 20),
    ("1.5g", 3 << 29), ("512k", 512 << 10), ("10 MB", 10 << 20), ("2t", 2 << 40),
])
def test_ram_in_bytes_is_go_units(text, expected):
    assert ram_in_bytes(text) == expected


@pytest.mark.parametrize("text", ["", "m", "-1", "1.2.3", "12x", "1e3"])
def test_ram_in_bytes_refuses(text):
    with pytest.raises(ValueError, match="invalid size"):
        ram_in_bytes(text)


CREATED = {"memory": {"limit": 32 << 20, "swap": 64 << 20, "disableOOMKiller": True},
           "cpu": {"shares": 512, "cpus": "0"}, "pids": {"limit": 30},
           "devices": [{"allow": False, "access": "rwm"}]}


def test_merge_keeps_what_the_update_does_not_give():
    merged = merge(CREATED, {"memory": {"limit": 48 << 20, "reservation": 0}, "cpu": {"quota": 50000, "cpus": ""}})
    assert merged["memory"] == {"limit": 48 << 20, "swap": 64 << 20, "disableOOMKiller": True}
    assert merged["cpu"] == {"shares": 512, "cpus": "0", "quota": 50000}
    assert merged["pids"] == {"limit": 30} and merged["devices"] == CREATED["devices"]
    assert CREATED["memory"]["limit"] == 32 << 20, "the kept resources are not changed in place"


def test_unlimited_memory_without_swap_unlimits_swap_as_runc():
    assert merge(CREATED, {"memory": {"limit": -1}})["memory"]["swap"] == -1


def test_a_negative_pids_limit_is_unlimited():
    assert merge(CREATED, {"pids": {"limit": -5}})["pids"] == {"limit": -1}


def test_only_the_touched_sections_are_written_with_merged_values():
    delta = {"memory": {"limit": 48 << 20}, "pids": {"limit": 0}, "cpu": {"idle": 0}}
    assert to_apply(merge(CREATED, delta), delta) == {
        "memory": {"limit": 48 << 20, "swap": 64 << 20, "disableOOMKiller": True},
        "cpu": {"shares": 512, "cpus": "0", "idle": 0}}
    assert to_apply(CREATED, {}) == {}


def test_v1_update_raises_memsw_before_the_limit(tmp_path, writes):  # noqa: F811
    m = new_v1(tmp_path, controllers=("memory", "cpu", "pids"))
    current = {"memory": CREATED["memory"], "pids": CREATED["pids"]}
    m.apply(current)
    writes.clear()
    delta = {"memory": {"limit": 64 << 20, "swap": 128 << 20}, "cpu": {"quota": 50000, "period": 100000},
             "pids": {"limit": 10}}
    m.apply(to_apply(merge(current, delta), delta))
    assert writes == [("memory.memsw.limit_in_bytes", str(128 << 20)), ("memory.limit_in_bytes", str(64 << 20)),
                      ("memory.oom_control", "1"),
                      ("cpu.cfs_period_us", "100000"), ("cpu.cfs_quota_us", "50000"), ("pids.max", "10")]


def test_v2_update_translates_as_runc(tmp_path, writes):  # noqa: F811
    m = new_v2(tmp_path)
    current = {"memory": {"limit": 32 << 20, "swap": 64 << 20}, "cpu": {"shares": 1024}}
    delta = {"memory": {"limit": 48 << 20, "reservation": 16 << 20}, "cpu": {"shares": 256, "quota": 50000},
             "pids": {"limit": -1}, "blockIO": {"weight": 300}}
    writes.clear()
    m.apply(to_apply(merge(current, delta), delta))
    assert writes == [
        ("pids.max", "max"),
        ("memory.swap.max", str(16 << 20)),  # swap is memory+swap in OCI: 64m - 48m
        ("memory.max", str(48 << 20)), ("memory.low", str(16 << 20)),
        ("io.weight", str(blkio_weight_to_io_weight(300))),
        ("cpu.weight", str(shares_to_weight(256))), ("cpu.max", "50000"),
    ]
