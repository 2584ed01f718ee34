"""The process's own figures from /proc (Linux): memory, open files, threads and CPU.

No psutil: three small files say it all, and reading them costs microseconds.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class Sample:
    memory_mb: float  # resident set size
    open_files: int
    threads: int
    cpu_user: float  # seconds since the process started
    cpu_system: float
    at: float  # monotonic


def sample() -> Sample:
    rss_kb, threads = 0, 0
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    rss_kb = int(line.split()[1])
                elif line.startswith("Threads:"):
                    threads = int(line.split()[1])
        with open("/proc/self/stat", encoding="ascii", errors="replace") as stat:
            # the command name may hold spaces: fields are counted after its closing parenthesis
            fields = stat.read().rsplit(")", 1)[1].split()
        user, system = int(fields[11]) / _TICKS, int(fields[12]) / _TICKS
        open_files = len(os.listdir("/proc/self/fd"))
    except (OSError, IndexError, ValueError):  # not Linux: report what we cannot see as zero
        user, system, open_files = 0.0, 0.0, 0
    return Sample(round(rss_kb / 1024, 1), open_files, threads, user, system, time.monotonic())


class ProcessMeter:
    """The latest sample and the CPU share between the last two (taken by the recorder)."""

    def __init__(self) -> None:
        self.last = sample()
        self.cpu_percent = 0.0

    def take(self) -> Sample:
        current = sample()
        elapsed = current.at - self.last.at
        if elapsed > 0:
            used = (current.cpu_user + current.cpu_system) - (self.last.cpu_user + self.last.cpu_system)
            self.cpu_percent = round(max(0.0, used / elapsed * 100), 1)
        self.last = current
        return current

    def json(self) -> dict[str, object]:
        now = sample()
        return {
            "memoryMb": now.memory_mb,
            "openFiles": now.open_files,
            "threads": now.threads,
            "cpu": {
                "percent": self.cpu_percent,
                "userSeconds": round(now.cpu_user, 2),
                "systemSeconds": round(now.cpu_system, 2),
            },
            "pid": os.getpid(),
        }


__all__ = ["ProcessMeter", "Sample", "sample"]
