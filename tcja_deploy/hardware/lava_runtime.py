"""Importing Lava's runtime safely (one place for the workaround, used by every Lava caller)."""

from __future__ import annotations


def import_lava_runtime() -> None:
    """Import Lava's runtime even when the multiprocessing start method is already fixed.

    Lava calls ``multiprocessing.set_start_method('fork')`` on import, which raises once anything fixed
    the start method (a tqdm lock during training in the same process does); fork is Linux's default,
    so the call is forced in that case.
    """
    import multiprocessing as mp
    import sys

    if "lava.magma.runtime.runtime" in sys.modules:
        return
    if mp.get_start_method(allow_none=True) is None:
        import lava.magma.runtime.runtime  # noqa: F401
        return
    original = mp.set_start_method
    mp.set_start_method = lambda method, force=False: original(method, force=True)
    try:
        import lava.magma.runtime.runtime  # noqa: F401
    finally:
        mp.set_start_method = original
