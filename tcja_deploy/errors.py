"""User-facing errors: one line naming the file or value and the problem, exit code 2."""

from __future__ import annotations

import argparse
import errno
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


def os_error_line(e: OSError) -> str:
    """An OSError as ``<file>: <reason>`` (one line)."""
    reason = e.strerror or (errno.errorcode.get(e.errno, "") if e.errno else "") or str(e) or type(e).__name__
    where = e.filename if e.filename is not None else ""
    if e.filename2 is not None:
        where = f"{where} → {e.filename2}"
    return f"{where}: {reason}" if where else one_line(e)


class OneLineParser(argparse.ArgumentParser):
    """argparse with our error convention: one line ``error: ...`` and exit code 2 (no usage block)."""

    def error(self, message: str):  # type: ignore[override]
        raise UserError(message)


def cli_main(fn: F) -> F:
    """Wrap a CLI ``main(argv) -> int``: UserError → one line on stderr + exit code 2; Ctrl-C → 130."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs) or 0
        except UserError as e:
            print(f"error: {one_line(e)}", file=sys.stderr)
            return 2
        except OSError as e:  # read-only or full disk, a file where a folder belongs, no permission, ...
            print(f"error: {os_error_line(e)}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130

    return wrapper  # type: ignore[return-value]
