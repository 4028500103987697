"""Child processes of a sweep that die with it.

A sweep trains each variant in its own ``python -m medsora.fit`` process. If the sweep is killed
(``kill -9``, an out-of-memory kill, a closed terminal), those children must not keep training as
orphans. On Linux each child is started through a tiny launcher that asks the kernel to send it
``SIGKILL`` when its parent dies (``prctl(PR_SET_PDEATHSIG)``, kept across ``exec``) and then
``exec``-s the real command, so the child keeps its own pid and nothing else changes. (Setting it
in a ``preexec_fn`` would be simpler but is unsafe in a process with threads, which the sweep's
job pool has.) Checkpoints are written atomically, so a child killed mid-write loses nothing but
the step in flight; the sweep resumes it from its newest checkpoint on the next run.
"""
from __future__ import annotations

import subprocess
import sys
from typing import IO, Optional, Sequence

__all__ = ["LAUNCHER", "child_command", "run_child"]

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


def run_child(cmd: Sequence[str], log: IO, env: Optional[dict] = None) -> int:
    """Run ``cmd`` to completion as a child that dies with this process; returns its exit status."""
    import os

    proc = subprocess.Popen(child_command(cmd, os.getpid()), stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        return proc.wait()
    except BaseException:  # KeyboardInterrupt or an error in the sweep: take the child down too
        proc.kill()
        proc.wait()
        raise
