"""User-facing errors: one line naming the file or value and the problem, exit code 2."""

from __future__ import annotations

import functools
import sys
from typing import Callable, TypeVar

F = TypeVar("F", bound=Callable[..., int | None])


class UserError(Exception):
    """Bad input from the user (file, flag, data). The CLI prints ``error: <message>`` and exits 2."""


def one_line(error: BaseException) -> str:
    """The message of ``error`` on one line.

    A UserError raised in a DataLoader worker comes back with the worker's traceback in its message;
    its last line is the original message.
    """
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return error.__class__.__name__
    last = lines[-1] if len(lines) > 1 else lines[0]
    prefix = f"{UserError.__module__}.{UserError.__name__}: "
    return last[len(prefix):] if last.startswith(prefix) else last


def cli_main(fn: F) -> F:
    """Wrap a CLI ``main(argv) -> int``: UserError → one line on stderr + exit code 2; Ctrl-C → 130."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs) or 0
        except UserError as e:
            print(f"error: {one_line(e)}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130

    return wrapper  # type: ignore[return-value]
