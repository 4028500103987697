"""Child processes of a sweep that die with it.

A sweep trains each variant in its own ``python -m medsora.fit`` process. If the sweep is killed
(``kill -9``, an out-of-memory kill, a closed terminal), those children must not keep training as
orphans. On Linux each child is started through a tiny launcher that asks the kernel to send it
``SIGKILL`` when its parent dies (``prctl(PR_SET_PDEATHSIG)``, kept across ``exec``) and then
``exec``-s the real command, so the child keeps its own pid and nothing else changes. (Setting it
in a ``preexec_fn`` would be simpler but is unsafe in a process with threads, which the sweep's
job pool has.) Checkpoints are written atomically, so a child killed mid-write loses nothing but
the step in flight; the sweep resumes it from its newest checkpoint on the next run.

:func:`run_child` also returns what the child cost: its CPU seconds (user + system, its own
descendants such as data-loader workers included) and peak resident memory, read from the
kernel's accounting when it is reaped (``os.wait4``) -- on a shared machine the CPU time is the
figure that wall time cannot give.
"""
from __future__ import annotations

import os
import subprocess
import sys
from typing import IO, NamedTuple, Optional, Sequence

__all__ = ["LAUNCHER", "ChildResult", "child_command", "run_child"]

# argv: python -c LAUNCHER <parent pid> <command...>
LAUNCHER = (
    "import ctypes, os, signal, sys\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG\n"
    "if os.getppid() != int(sys.argv[1]):\n"  # the parent died before prctl took effect
    "    sys.exit(137)\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n"
)


def child_command(cmd: Sequence[str], parent_pid: int) -> list[str]:
    """``cmd`` wrapped so that it dies with ``parent_pid`` (unchanged off Linux)."""
    if not sys.platform.startswith("linux"):
        return list(cmd)
    return [sys.executable, "-c", LAUNCHER, str(parent_pid), *cmd]


class ChildResult(NamedTuple):
    """A finished child: exit status, CPU seconds (user + system, with its reaped descendants), peak RSS.

    ``max_rss_mb`` is the kernel's ``ru_maxrss`` of the child and its descendants; on Linux it includes
    the pages the child shared with its parent between fork and exec, so a child of a large process
    reports at least about that process's resident size.
    """

    returncode: int
    cpu_s: float
    max_rss_mb: float


def _reap(proc: subprocess.Popen) -> ChildResult:
    """Wait for ``proc`` with ``os.wait4`` (its resource usage), where the platform has it."""
    if not hasattr(os, "wait4"):
        return ChildResult(proc.wait(), float("nan"), float("nan"))
    while True:
        try:
            _, status, usage = os.wait4(proc.pid, 0)
            break
        except InterruptedError:
            continue
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it again
    scale = 1024 if sys.platform.startswith("linux") else 1  # ru_maxrss: KiB on Linux, bytes on macOS
    return ChildResult(proc.returncode, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * scale / 2**20)


def run_child(cmd: Sequence[str], log: IO, env: Optional[dict] = None) -> ChildResult:
    """Run ``cmd`` to completion as a child that dies with this process; returns its exit status and cost."""
    proc = subprocess.Popen(child_command(cmd, os.getpid()), stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        return _reap(proc)
    except BaseException:  # KeyboardInterrupt or an error in the sweep: take the child down too
        proc.kill()
        proc.wait()
        raise
