"""`orlop update` (`orlop container update`): new resource limits or restart policy for one or
more containers, sent as the docker CLI sends them (its UpdateConfig, every field in order)."""

from __future__ import annotations

import sys

from orlop.cli.client import APIError
from orlop.cli.containeropts import _nano_cpus, _size
from orlop.cli.errors import CommandError
from orlop.cli.flags import Spec, command, flag

UPDATE_SPEC = Spec("update", "orlop update [OPTIONS] CONTAINER [CONTAINER...]",
                   "Update configuration of one or more containers", [
                       flag("--blkio-weight", "int", "Block IO (relative weight), between 10 and 1000, or 0 to "
                                                     "disable (default 0)", 0),
                       flag("--cpu-period", "int", "Limit CPU CFS (Completely Fair Scheduler) period", 0),
                       flag("--cpu-quota", "int", "Limit CPU CFS (Completely Fair Scheduler) quota", 0),
                       flag("--cpu-rt-period", "int", "Limit the CPU real-time period in microseconds", 0),
                       flag("--cpu-rt-runtime", "int", "Limit the CPU real-time runtime in microseconds", 0),
                       flag("-c, --cpu-shares", "int", "CPU shares (relative weight)", 0),
                       flag("--cpus", "string", "Number of CPUs", metavar="decimal"),
                       flag("--cpuset-cpus", "string", "CPUs in which to allow execution (0-3, 0,1)"),
                       flag("--cpuset-mems", "string", "MEMs in which to allow execution (0-3, 0,1)"),
                       flag("--kernel-memory", "string", "Kernel memory limit (deprecated)", metavar="bytes"),
                       flag("-m, --memory", "string", "Memory limit", metavar="bytes"),
                       flag("--memory-reservation", "string", "Memory soft limit", metavar="bytes"),
                       flag("--memory-swap", "string", "Swap limit equal to memory plus swap: -1 to enable "
                                                       "unlimited swap", metavar="bytes"),
                       flag("--pids-limit", "int", "Tune container pids limit (set -1 for unlimited)", 0),
                       flag("--restart", "string", "Restart policy to apply when a container exits"),
                   ], min_args=1, aliases="orlop container update, orlop update")


def request_body(opts) -> dict:
    """The UpdateConfig the docker CLI sends: Resources (zero values included) + RestartPolicy."""
    if not 0 <= opts.blkio_weight <= 65535:
        raise CommandError(f'invalid argument "{opts.blkio_weight}" for "--blkio-weight" flag: '
                           "strconv.ParseUint: value out of range", 125)
    policy = {"Name": "", "MaximumRetryCount": 0}
    if opts.restart:
        name, _, count = opts.restart.partition(":")
        try:
            policy = {"Name": name, "MaximumRetryCount": int(count) if count else 0}
        except ValueError:
            raise CommandError(f"invalid restart policy format: maximum retry count must be an integer: {count}",
                               125) from None
    swap = -1 if opts.memory_swap == "-1" else _size(opts.memory_swap, "--memory-swap")
    body: dict = {
        "CpuShares": opts.cpu_shares, "Memory": _size(opts.memory, "-m, --memory"), "NanoCpus": _nano_cpus(opts.cpus),
        "CgroupParent": "", "BlkioWeight": opts.blkio_weight, "BlkioWeightDevice": None,
        "BlkioDeviceReadBps": None, "BlkioDeviceWriteBps": None, "BlkioDeviceReadIOps": None,
        "BlkioDeviceWriteIOps": None, "CpuPeriod": opts.cpu_period, "CpuQuota": opts.cpu_quota,
        "CpuRealtimePeriod": opts.cpu_rt_period, "CpuRealtimeRuntime": opts.cpu_rt_runtime,
        "CpusetCpus": opts.cpuset_cpus or "", "CpusetMems": opts.cpuset_mems or "", "Devices": None,
        "DeviceCgroupRules": None, "DeviceRequests": None,
    }
    if opts.kernel_memory:
        body["KernelMemory"] = _size(opts.kernel_memory, "--kernel-memory")
    body.update({
        "MemoryReservation": _size(opts.memory_reservation, "--memory-reservation"), "MemorySwap": swap,
        "MemorySwappiness": None, "OomKillDisable": None, "PidsLimit": opts.pids_limit or None, "Ulimits": None,
        "CpuCount": 0, "CpuPercent": 0, "IOMaximumIOps": 0, "IOMaximumBandwidth": 0, "RestartPolicy": policy,
    })
    return body


@command(UPDATE_SPEC)
def update(cli, opts, args):
    if not opts.changed:
        raise CommandError("you must provide one or more flags when using this command")
    if "kernel_memory" in opts.changed:
        sys.stderr.write("Flag --kernel-memory has been deprecated, and no longer supported by the kernel\n")
    body = request_body(opts)
    warnings: list[str] = []
    failed = []
    for name in args:
        try:
            answer = cli.client.post(f"/containers/{name}/update", None, body) or {}
        except APIError as e:
            sys.stdout.flush()
            sys.stderr.write(f"Error response from daemon: {e.message}\n")
            failed.append(name)
            continue
        sys.stdout.write(name + "\n")
        warnings.extend(answer.get("Warnings") or [])
    if warnings:
        sys.stdout.write("\n".join(warnings) + "\n")
    return 1 if failed else 0
