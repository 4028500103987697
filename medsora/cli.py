"""One way for every ``python -m medsora.X`` entry point to report a user's mistake: one line, no traceback.

    if __name__ == "__main__":
        raise SystemExit(run_cli(main, "medsora.fit"))

:func:`run_cli` calls ``main(argv)``; an error the user can act on (a bad config value, a missing
or damaged file, a checkpoint of another kind, an unreadable data set, ...) becomes
``medsora.fit: error: <message>`` on stderr and exit status 2. Anything else is a bug and keeps
its traceback. ``--debug`` anywhere on the command line (it is removed before ``main`` parses
the arguments) or ``MEDSORA_DEBUG=1`` shows the traceback of user errors too.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Callable, Optional, Sequence

__all__ = ["run_cli", "user_error_types", "one_line", "debug_enabled"]

DEBUG_FLAG = "--debug"
DEBUG_ENV = "MEDSORA_DEBUG"


def user_error_types() -> tuple[type, ...]:
    """Exceptions that mean "the input is wrong", not "the code is wrong".

    ``ValueError`` (``ConfigError``, ``ManifestError``, ``StaleCacheError`` are subclasses) and
    ``OSError`` (missing, unreadable or unwritable files; ``TeacherWeightsError``) cover most;
    the rest are MedSora's own error classes.
    """
    import yaml

    from medsora.data.sources.formats import UnreadableVideo
    from medsora.data.table import DataError
    from medsora.training.callbacks import NonFiniteLossError
    from medsora.pretrained.checkpoint_file import CheckpointError

    types: list[type] = [ValueError, OSError, yaml.YAMLError, UnreadableVideo, DataError, CheckpointError,
                         NonFiniteLossError]
    for module, name in (("medsora.metrics.weights", "MetricUnavailable"), ("medsora.evaluate", "EvaluationError")):
        loaded = sys.modules.get(module)  # only where that CLI ran: importing it here would be slow
        if loaded is not None:
            types.append(getattr(loaded, name))
    return tuple(types)


def one_line(err: BaseException) -> str:
    """The error's message on one line (YAML and multi-line messages joined with ' ')."""
    text = " ".join(part.strip() for part in str(err).splitlines() if part.strip())
    return text or type(err).__name__


def debug_enabled(argv: Sequence[str] = ()) -> bool:
    """Whether ``--debug`` is in ``argv`` or ``MEDSORA_DEBUG`` is set to something other than 0/false/no."""
    env = os.environ.get(DEBUG_ENV, "").strip().lower()
    return DEBUG_FLAG in argv or env not in ("", "0", "false", "no", "off")


def run_cli(main: Callable[[Optional[Sequence[str]]], Any], prog: str,
            argv: Optional[Sequence[str]] = None) -> int:
    """Run an entry point's ``main(argv)`` and turn user errors into one line and exit status 2.

    Returns the exit status: ``main``'s own when it returns an int, else 0.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = debug_enabled(argv)
    argv = [a for a in argv if a != DEBUG_FLAG]
    try:
        result = main(argv)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - sorted below: user errors are one line, bugs keep their traceback
        if debug or not isinstance(err, user_error_types()):
            raise
        print(f"{prog}: error: {one_line(err)} (--debug shows the traceback)", file=sys.stderr)
        return 2
    return result if isinstance(result, int) and not isinstance(result, bool) else 0
