"""The CPU and the llama.cpp build under the local engine, and the two choices made from them.

Covers:
- **Features**: what the llama.cpp build uses, as llama.cpp itself reports it
  (``llama_print_system_info``: ``AVX2 = 1 | AVX512 = 1 | AMX_INT8 = 1 | …``), parsed.
- **Weight buffer types**: llama.cpp can place weights in "extra" CPU buffer types (AMX tiles on
  Intel Xeons when built with ``-march=native``; repacked layouts for some quantisations on
  AVX2 and Arm). Extra types whose kernels are known to crash in this llama.cpp are skipped
  unless the user turns them back on: ``AMX_INT8`` segfaults on the first ``llama_decode`` with
  Q4_1 weights (upstream llama.cpp issue 20824). Which types the weights really landed in is
  read from llama.cpp's own load log (``… model buffer size = … MiB``).
- **Threads**: llama.cpp's worker threads meet at a barrier after every operation and spin
  there. When another process takes one of the cores, the thread that lost its core holds
  every other thread at each barrier, and decoding collapses (measured on a 2-core Xeon: 100
  tok/s fell to 0.8). The ``auto`` policy follows the cores that other processes leave free:
  between decodes (at most every ``interval`` seconds) it reads the busy time of the CPUs this
  process may run on, subtracts its own CPU time, and runs as many threads as cores are left
  (at least one, at most the physical cores). A fixed count turns this off.

Does not cover: GPU offload (the local engine runs on the CPU); a cgroup CPU quota without a
cpuset (the free cores are read from the CPUs this process may run on, so a quota that is
smaller than them shows as busy time of other processes only when they use it).
"""

from __future__ import annotations

import ctypes
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

import psutil

ExtraBuffers = Literal["auto", "on", "off"]

# Features whose extra buffer type is known to crash in the pinned llama.cpp, and why.
KNOWN_BAD: dict[str, str] = {
    "AMX_INT8": "the AMX weight kernels crash on the first decode (llama.cpp issue 20824)",
}

_BUFFER_LINE = re.compile(r"(\S+) model buffer size\s*=\s*([\d.]+) MiB")


def system_info() -> str:
    """llama.cpp's one-line report of the backends and CPU features this build uses."""
    import llama_cpp

    return llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip()


def features(info: str) -> dict[str, str]:
    """``"CPU : AVX2 = 1 | AMX_INT8 = 1 |"`` as ``{"AVX2": "1", "AMX_INT8": "1"}``."""
    out: dict[str, str] = {}
    for part in info.split("|"):
        if "=" in part:
            name, _, value = part.rpartition("=")
            name = name.split(":")[-1].strip()
            if name:
                out[name] = value.strip()
    return out


@dataclass(frozen=True)
class BufferChoice:
    """Whether the model is loaded with llama.cpp's extra weight buffer types, and why."""

    setting: ExtraBuffers
    use_extra: bool
    reason: str


def choose_extra_buffers(setting: ExtraBuffers, info: str) -> BufferChoice:
    """``auto`` turns extra buffer types off when the build reports a feature in ``KNOWN_BAD``."""
    if setting == "on":
        return BufferChoice(setting, True, "turned on by --extra-buffers on")
    if setting == "off":
        return BufferChoice(setting, False, "turned off by --extra-buffers off")
    feats = features(info)
    bad = [name for name in KNOWN_BAD if feats.get(name) == "1"]
    if bad:
        return BufferChoice(setting, False, f"{bad[0]} = 1 in this build, and {KNOWN_BAD[bad[0]]}")
    return BufferChoice(setting, True, "no feature of this build is known to crash in them")


def model_params(choice: BufferChoice):
    """llama.cpp model parameters with the chosen buffer types (all else at llama.cpp's defaults)."""
    import llama_cpp

    params = llama_cpp.llama_model_default_params()
    params.use_extra_bufts = choice.use_extra
    return params


def weight_buffers(log: str) -> dict[str, float]:
    """``{"CPU_Mapped": 98.6, "AMX": 70.1}``: MiB of weights per buffer type, from the load log."""
    out: dict[str, float] = {}
    for name, mib in _BUFFER_LINE.findall(log):
        out[name] = round(out.get(name, 0.0) + float(mib), 2)
    return out


_log_lock = threading.Lock()


@contextmanager
def captured_llama_log() -> Iterator[list[str]]:
    """Collect llama.cpp's log lines while the block runs, then give the log back to
    llama-cpp-python's own handler (which prints only when verbose)."""
    import llama_cpp
    import llama_cpp._logger

    lines: list[str] = []

    @llama_cpp.llama_log_callback
    def keep(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        lines.append(text.decode("utf-8", "replace"))

    with _log_lock:
        llama_cpp.llama_log_set(keep, ctypes.c_void_p(0))
        try:
            yield lines
        finally:
            llama_cpp.llama_log_set(llama_cpp._logger.llama_log_callback, ctypes.c_void_p(0))


def cpu_model() -> str:
    """The processor's name ("Intel(R) Xeon(R) Platinum 8481C", "AMD EPYC 9B14", …)."""
    import platform

    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    """The CPU's feature flags as the kernel reports them (Linux; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


# -- threads ---------------------------------------------------------------------------------

def allowed_cpus() -> list[int]:
    """The logical CPUs this process may run on (its affinity mask, where the OS has one)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def physical_cores(cpus: int) -> int:
    """Physical cores among ``cpus`` logical ones (SMT siblings share a core's arithmetic)."""
    logical = psutil.cpu_count(logical=True) or cpus
    physical = psutil.cpu_count(logical=False) or logical
    per_core = max(1, round(logical / physical))
    return max(1, -(-cpus // per_core))


def cgroup_quota(path: str = "/sys/fs/cgroup/cpu.max") -> float | None:
    """Cores a cgroup v2 CPU quota allows this container (``"200000 100000"`` is 2.0), if any."""
    try:
        quota, period = open(path).read().split()[:2]
        return None if quota == "max" else max(1.0, int(quota) / int(period))
    except (OSError, ValueError):
        return None


def most_threads() -> int:
    """The most threads worth running: physical cores this process may use, within any quota."""
    n = physical_cores(len(allowed_cpus()))
    quota = cgroup_quota()
    return max(1, min(n, int(quota))) if quota else n


def _busy_seconds(t) -> float:
    """Busy time of one CPU: time stolen by the hypervisor counts, since it is a core taken."""
    return sum(getattr(t, name, 0.0) for name in ("user", "nice", "system", "irq", "softirq", "steal"))


def threads_for(free_cores: float, most: int) -> int:
    """Threads for ``free_cores`` left by other processes: a core counts once it is 3/4 free."""
    return max(1, min(most, int(free_cores + 0.25)))


@dataclass
class ThreadPolicy:
    """``fixed`` threads, or (``fixed=None``) as many as the cores other processes leave free."""

    fixed: int | None = None
    most: int = field(default_factory=most_threads)
    interval: float = 0.5
    cpus: list[int] = field(default_factory=allowed_cpus)
    clock: Callable[[], float] = time.monotonic
    current: int = 0
    free_cores: float | None = None  # last measurement
    changes: int = 0

    def __post_init__(self) -> None:
        self.current = self.fixed or self.most
        self._proc = psutil.Process()
        self._last = self._sample()

    def _sample(self) -> tuple[float, float, float]:
        per_cpu = psutil.cpu_times(percpu=True)  # online CPUs, in order
        if len(per_cpu) == (os.cpu_count() or len(per_cpu)):
            chosen = [per_cpu[i] for i in self.cpus if i < len(per_cpu)]
        else:  # some CPUs offline: positions are not CPU ids, so measure every online CPU
            chosen = list(per_cpu)
        self._measured = len(chosen)
        busy = sum(_busy_seconds(t) for t in chosen)
        own = self._proc.cpu_times()
        return self.clock(), busy, own.user + own.system

    def choose(self) -> int:
        """The thread count for the next decode (re-measured at most every ``interval`` s)."""
        if self.fixed:
            return self.fixed
        now = self.clock()
        if now - self._last[0] < self.interval:
            return self.current
        sample = self._sample()
        wall = sample[0] - self._last[0]
        if wall <= 0:
            return self.current
        others = max(0.0, (sample[1] - self._last[1]) - (sample[2] - self._last[2])) / wall
        self._last = sample
        self.free_cores = max(0.0, self._measured - others)
        n = threads_for(self.free_cores, self.most)
        if n != self.current:
            self.current = n
            self.changes += 1
        return n

    def describe(self) -> dict:
        return {"policy": "fixed" if self.fixed else "auto", "most": self.fixed or self.most,
                "current": self.current, "allowed_cpus": len(self.cpus),
                "free_cores": None if self.free_cores is None else round(self.free_cores, 2),
                "changes": self.changes}
