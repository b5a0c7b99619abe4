"""Resource limits as dockerd handles them, without a daemon: the checks of a create or
update request against what the host supports (refusals, discards with warnings), what is
filled in at create, an update merged into HostConfig with moby's conflicts, and the
delta the runtime's `update` gets."""

from __future__ import annotations

import pytest

from orlop.containers import resource_checks, spec, update
from orlop.containers.host_support import HostSupport, from_hierarchies, parse_list
from orlop.errors import Conflict, InvalidParameter
from orlop.linux.cgroups.common import Hierarchies

EVERYTHING = HostSupport(version=1, memory=True, swap=True, reservation=True, swappiness=True,
                         oom_kill_disable=True, pids=True, cpu_shares=True, cpu_cfs=True, cpu_realtime=True,
                         cpuset=True, cpus="0-1", mems="0", blkio_weight=True)
CGROUP_V2 = HostSupport(version=2, memory=True, swap=True, reservation=True, pids=True, cpu_shares=True,
                        cpu_cfs=True, cpuset=True, cpus="0-1", mems="0", blkio_weight=True)
NOTHING = HostSupport(version=1)


@pytest.fixture(autouse=True)
def two_cpus(monkeypatch):
    monkeypatch.setattr(resource_checks, "usable_cpus", lambda: 2)


@pytest.mark.parametrize("hc, message", [
    ({"Memory": 1000}, "Minimum memory limit allowed is 6MB"),
    ({"Memory": 64 << 20, "MemorySwap": 32 << 20}, "Minimum memoryswap limit should be larger than memory limit"),
    ({"MemorySwap": 64 << 20}, "You should always set the Memory limit when using Memoryswap limit"),
    ({"MemoryReservation": 1 << 20}, "Minimum memory reservation allowed is 6MB"),
    ({"Memory": 16 << 20, "MemoryReservation": 32 << 20}, "Minimum memory limit can not be less than memory "
                                                          "reservation limit"),
    ({"MemorySwappiness": 101}, "Invalid value: 101, valid memory swappiness range is 0-100"),
    ({"NanoCpus": -5}, "Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available"),
    ({"NanoCpus": 3_000_000_000}, "Range of CPUs is from 0.01 to 2.00"),
    ({"NanoCpus": 500_000_000, "CpuPeriod": 50000}, "Nano CPUs and CPU Period cannot both be set"),
    ({"NanoCpus": 500_000_000, "CpuQuota": 50000}, "Nano CPUs and CPU Quota cannot both be set"),
    ({"CpuPeriod": 500}, r"CPU cfs period can not be less than 1ms \(i.e. 1000\) or larger than 1s"),
    ({"CpuQuota": 999}, r"CPU cfs quota can not be less than 1ms \(i.e. 1000\)"),
    ({"CpuShares": -1}, "invalid CPU shares"),
    ({"CpuRealtimePeriod": 1000, "CpuRealtimeRuntime": 2000}, "cpu real-time runtime cannot be higher"),
    ({"CpusetCpus": "5"}, "Requested CPUs are not available - requested 5, available: 0-1"),
    ({"CpusetCpus": "0-2"}, "Requested CPUs are not available - requested 0-2, available: 0-1"),
    ({"CpusetCpus": "a"}, "Invalid value a for cpuset cpus: invalid format: a"),
    ({"CpusetMems": "1"}, "Requested memory nodes are not available - requested 1, available: 0"),
    ({"BlkioWeight": 5}, "Range of blkio weight is from 10 to 1000"),
    ({"IOMaximumIOps": 5}, "Invalid QoS settings"),
    ({"ShmSize": -1}, "SHM size can not be less than 0"),
])
def test_bad_values_are_refused_with_dockers_message(hc, message):
    with pytest.raises(InvalidParameter, match=message):
        resource_checks.check(hc, EVERYTHING)


def test_good_values_pass_untouched():
    hc = {"Memory": 64 << 20, "MemorySwap": 128 << 20, "MemoryReservation": 32 << 20, "NanoCpus": 1_500_000_000,
          "CpuShares": 512, "CpusetCpus": "0,1", "CpusetMems": "0", "PidsLimit": 20, "BlkioWeight": 300,
          "OomKillDisable": True, "MemorySwappiness": 10}
    before = dict(hc)
    assert resource_checks.check(hc, EVERYTHING) == []
    assert hc == before


def test_what_the_host_cannot_apply_is_discarded_with_dockers_warnings():
    hc = {"Memory": 64 << 20, "MemoryReservation": 32 << 20, "MemorySwappiness": 10, "OomKillDisable": True,
          "PidsLimit": 20, "CpuShares": 512, "CpuQuota": 50000, "CpusetCpus": "0", "BlkioWeight": 300}
    warnings = resource_checks.check(hc, NOTHING)
    assert warnings == [
        "Your kernel does not support memory limit capabilities or the cgroup is not mounted. Limitation discarded.",
        "Your kernel does not support memory swappiness capabilities or the cgroup is not mounted. Memory "
        "swappiness discarded.",
        "Your kernel does not support memory soft limit capabilities or the cgroup is not mounted. Limitation "
        "discarded.",
        "Your kernel does not support OomKillDisable. OomKillDisable discarded.",
        "Your kernel does not support PIDs limit capabilities or the cgroup is not mounted. PIDs limit discarded.",
        "Your kernel does not support CPU shares or the cgroup is not mounted. Shares discarded.",
        "Your kernel does not support CPU CFS scheduler. CPU period/quota discarded.",
        "Your kernel does not support cpuset or the cgroup is not mounted. Cpuset discarded.",
        "Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.",
    ]
    assert hc["Memory"] == 0 and hc["MemorySwap"] == -1 and hc["BlkioWeight"] == 0 and hc["PidsLimit"] is None
    assert not hc["OomKillDisable"] and hc["CpusetCpus"] == "" and hc["CpuQuota"] == 0


def test_oom_kill_disable_on_cgroup_v2_is_discarded_as_docker_does():
    hc = {"Memory": 64 << 20, "OomKillDisable": True}
    assert resource_checks.check(hc, CGROUP_V2) == ["Your kernel does not support OomKillDisable. "
                                                    "OomKillDisable discarded."]
    assert hc["OomKillDisable"] is False
    hc = {"OomKillDisable": True}
    assert resource_checks.check(hc, EVERYTHING) == [
        "OOM killer is disabled for the container, but no memory limit is set, this can result in the system "
        "running out of resources."]


def test_without_swap_accounting_memory_is_limited_without_swap():
    host = HostSupport(version=1, memory=True)
    hc = {"Memory": 64 << 20}
    assert resource_checks.check(hc, host) == ["Your kernel does not support swap limit capabilities or the "
                                               "cgroup is not mounted. Memory limited without swap."]
    assert hc["MemorySwap"] == -1


def test_create_fills_in_swap_twice_the_memory_and_clamps_shares():
    hc = {"Memory": 32 << 20, "MemorySwap": 0, "CpuShares": 1}
    resource_checks.adapt_for_create(hc)
    assert hc["MemorySwap"] == 64 << 20 and hc["CpuShares"] == 2
    hc = {"Memory": 32 << 20, "MemorySwap": -1, "CpuShares": 10 ** 7, "PidsLimit": -1, "KernelMemory": 1 << 30}
    resource_checks.adapt_for_create(hc)
    assert hc["MemorySwap"] == -1 and hc["CpuShares"] == 262144
    assert hc["PidsLimit"] is None and hc["KernelMemory"] == 0


def test_cpuset_lists():
    assert parse_list("0-2,5") == {0, 1, 2, 5}
    assert parse_list("") == set()
    for bad in ("a", "1-", "3-1", "1,,2"):
        with pytest.raises(ValueError, match="invalid format"):
            parse_list(bad)


def test_host_support_from_a_v1_tree(tmp_path):
    for controller, files in {"memory": ["memory.limit_in_bytes", "memory.soft_limit_in_bytes",
                                         "memory.oom_control", "memory.swappiness"],
                              "cpu": ["cpu.shares", "cpu.cfs_quota_us"], "cpuset": [], "blkio": [], "pids": []}.items():
        (tmp_path / controller).mkdir()
        for name in files:
            (tmp_path / controller / name).write_text("0\n")
    (tmp_path / "cpuset" / "cpuset.cpus").write_text("0-3\n")
    (tmp_path / "cpuset" / "cpuset.mems").write_text("0\n")
    mounts = {c: str(tmp_path / c) for c in ("memory", "cpu", "cpuset", "blkio", "pids")}
    found = from_hierarchies(Hierarchies(mounts, None, {c: "/" for c in mounts}))
    assert found.memory and not found.swap and found.oom_kill_disable and found.pids and found.cpu_cfs
    assert found.cpus == "0-3" and found.mems == "0"
    assert not found.blkio_weight, "no blkio.weight: no I/O scheduler that weighs (none, mq-deadline)"
    (tmp_path / "blkio" / "blkio.bfq.weight").write_text("100\n")
    assert from_hierarchies(Hierarchies(mounts, None, {c: "/" for c in mounts})).blkio_weight


def test_host_support_from_a_v2_tree(tmp_path):
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (tmp_path / "cpuset.cpus.effective").write_text("0-7\n")
    found = from_hierarchies(Hierarchies({}, str(tmp_path), {"": "/"}))
    assert found.version == 2 and found.memory and found.swap and found.cpus == "0-7"
    assert not found.oom_kill_disable and not found.swappiness


def test_spec_takes_the_limits_from_host_config():
    resources = spec.resources({"Memory": 32 << 20, "MemorySwap": 64 << 20, "MemoryReservation": 16 << 20,
                                "MemorySwappiness": 0, "NanoCpus": 1_500_000_000, "CpuShares": 512,
                                "CpusetCpus": "1", "PidsLimit": 20, "BlkioWeight": 300, "OomKillDisable": True})
    assert resources["memory"] == {"limit": 32 << 20, "reservation": 16 << 20, "swap": 64 << 20,
                                   "disableOOMKiller": True, "swappiness": 0}
    assert resources["cpu"] == {"period": 100000, "quota": 150000, "shares": 512, "cpus": "1"}
    assert resources["pids"] == {"limit": 20} and resources["blockIO"] == {"weight": 300}


# -- update ---------------------------------------------------------------------------------------

DOCKER_CLI_BODY = {  # what `docker update --memory 64m --memory-swap 128m --cpus 0.5 --pids-limit 20
    #                  --restart on-failure:3` sends (docker CLI 28.2)
    "CpuShares": 0, "Memory": 67108864, "NanoCpus": 500000000, "CgroupParent": "", "BlkioWeight": 0,
    "BlkioWeightDevice": None, "BlkioDeviceReadBps": None, "BlkioDeviceWriteBps": None, "BlkioDeviceReadIOps": None,
    "BlkioDeviceWriteIOps": None, "CpuPeriod": 0, "CpuQuota": 0, "CpuRealtimePeriod": 0, "CpuRealtimeRuntime": 0,
    "CpusetCpus": "", "CpusetMems": "", "Devices": None, "DeviceCgroupRules": None, "DeviceRequests": None,
    "MemoryReservation": 0, "MemorySwap": 134217728, "MemorySwappiness": None, "OomKillDisable": None,
    "PidsLimit": 20, "Ulimits": None, "CpuCount": 0, "CpuPercent": 0, "IOMaximumIOps": 0, "IOMaximumBandwidth": 0,
    "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3}}


def test_the_docker_clis_update_request_is_read_merged_and_given_to_the_runtime():
    resources, policy = update.read_request(DOCKER_CLI_BODY, "1.45")
    assert policy == {"Name": "on-failure", "MaximumRetryCount": 3}
    hc = {"Memory": 32 << 20, "MemorySwap": 64 << 20, "CpuShares": 512, "PidsLimit": None, "AutoRemove": False,
          "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0}}
    merged = update.merge(hc, resources, policy, "c1")
    assert merged["Memory"] == 64 << 20 and merged["MemorySwap"] == 128 << 20 and merged["NanoCpus"] == 500000000
    assert merged["CpuShares"] == 512, "a zero value keeps the current one"
    assert merged["PidsLimit"] == 20 and merged["RestartPolicy"] == policy
    assert hc["Memory"] == 32 << 20, "the current HostConfig is not changed in place"
    assert update.runtime_delta(resources) == {"cpu": {"period": 100000, "quota": 50000},
                                               "memory": {"limit": 64 << 20, "swap": 128 << 20},
                                               "pids": {"limit": 20}}


@pytest.mark.parametrize("current, request_body, message", [
    ({"MemorySwap": 0}, {"Memory": 64 << 20}, "Memory limit should be smaller than already set memoryswap limit, "
                                              "update the memoryswap at the same time"),
    ({"Memory": 32 << 20, "MemorySwap": 64 << 20}, {"Memory": 100 << 20}, "Memory limit should be smaller"),
    ({"Memory": 32 << 20, "MemorySwap": -1}, {"Memory": 100 << 20}, "Memory limit should be smaller"),
    ({"CpuPeriod": 50000}, {"NanoCpus": 10 ** 9}, "Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set"),
    ({"CpuQuota": 50000}, {"NanoCpus": 10 ** 9}, "Conflicting options: Nano CPUs cannot be updated as CPU Quota has already been set"),
    ({"NanoCpus": 10 ** 9}, {"CpuPeriod": 50000}, "Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set"),
    ({"NanoCpus": 10 ** 9}, {"CpuQuota": 50000}, "Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set"),
    ({"AutoRemove": True}, {"RestartPolicy": {"Name": "always"}}, "Restart policy cannot be updated because "
                                                                  "AutoRemove is enabled"),
])
def test_update_conflicts_are_mobys(current, request_body, message):
    resources, policy = update.read_request(request_body)
    with pytest.raises(Conflict, match=f"^Cannot update container c1: {message}"):
        update.merge(current, resources, policy, "c1")


def test_memory_and_swap_together_raise_both():
    resources, policy = update.read_request({"Memory": 100 << 20, "MemorySwap": 200 << 20})
    merged = update.merge({"Memory": 32 << 20, "MemorySwap": 64 << 20}, resources, policy, "c1")
    assert (merged["Memory"], merged["MemorySwap"]) == (100 << 20, 200 << 20)


@pytest.mark.parametrize("body, message", [
    ({"Memory": "64m"}, "cannot unmarshal string into Go struct field UpdateConfig.Memory of type int64"),
    ({"CpusetCpus": 1}, "UpdateConfig.CpusetCpus of type string"),
    ({"RestartPolicy": {"Name": "sometimes"}}, "invalid restart policy: unknown policy 'sometimes'"),
    ({"RestartPolicy": {"Name": "always", "MaximumRetryCount": 3}}, "maximum retry count can only be used with "
                                                                    "'on-failure'$"),
    ({"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": -1}}, "maximum retry count cannot be negative"),
    ([1], "must be a JSON object"),
])
def test_bad_update_requests(body, message):
    with pytest.raises(InvalidParameter, match=message):
        update.read_request(body)


def test_pids_limit_zero_or_negative_means_unlimited_and_needs_api_1_40():
    resources, _ = update.read_request({"PidsLimit": -1})
    assert resources["PidsLimit"] == 0 and update.runtime_delta(resources) == {"pids": {"limit": -1}}
    assert update.merge({"PidsLimit": 20}, resources, None, "c")["PidsLimit"] == 0
    resources, _ = update.read_request({"PidsLimit": 5}, "1.39")
    assert "PidsLimit" not in resources


def test_runtime_delta_takes_quota_and_period_and_unlimited_swap():
    resources, _ = update.read_request({"CpuQuota": 20000, "CpuPeriod": 50000, "MemorySwap": -1, "CpuShares": 100,
                                        "CpusetCpus": "0", "BlkioWeight": 200, "MemoryReservation": 8 << 20})
    assert update.runtime_delta(resources) == {
        "blockIO": {"weight": 200}, "cpu": {"cpus": "0", "shares": 100, "period": 50000, "quota": 20000},
        "memory": {"reservation": 8 << 20, "swap": -1}}
    assert update.runtime_delta(update.read_request({"RestartPolicy": {"Name": "always"}})[0]) == {}


def test_orlop_update_sends_what_the_docker_cli_sends():
    from orlop.cli.commands.update import UPDATE_SPEC, request_body
    from orlop.cli.flags import parse

    opts, args = parse(UPDATE_SPEC, ["--memory", "64m", "--memory-swap", "128m", "--cpus", "0.5", "--pids-limit",
                                     "20", "--restart", "on-failure:3", "c1"])
    assert args == ["c1"]
    body = request_body(opts)
    assert body == DOCKER_CLI_BODY and list(body) == list(DOCKER_CLI_BODY)
