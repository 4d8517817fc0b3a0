"""Output directories the commands own: what ``--out`` may replace, completeness markers, stale temporaries.

Every directory a command writes carries a marker file ``.tcja_deploy`` (JSON: ``{"kind": "run" | "deploy" |
"profile" | "report", "complete": bool, "pid", "host"}``). A command only replaces (or writes into) a
directory that is new, empty, or one it wrote itself (same ``kind``; directories from before markers are
recognised by their signature file). It never writes over a file, over one of its own inputs, or over a
folder that contains them. Readers of a deploy directory check that it is complete (the marker, or for
older directories ``fidelity.json``), so a killed convert's leftovers are never taken for a result.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path
from typing import Iterable, Optional

from tcja_deploy import atomic
from tcja_deploy.errors import UserError

MARKER = ".tcja_deploy"
#: The file that identifies a directory of each kind written before markers existed.
SIGNATURES = {"run": "config.json", "deploy": "graph.json", "profile": "profile.json", "report": "report.md"}


def read_marker(directory: Path) -> Optional[dict]:
    """The marker of ``directory``, or None (no marker, or not one of ours)."""
    path = Path(directory) / MARKER
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("kind"), str) else None


def kind_of(directory: Path) -> Optional[str]:
    """Which command wrote ``directory`` (by its marker or its signature file), or None."""
    marker = read_marker(directory)
    if marker is not None:
        return marker["kind"]
    for kind, name in SIGNATURES.items():
        if (Path(directory) / name).is_file():
            return kind
    return None


def write_marker(directory: Path, kind: str, complete: bool = True) -> None:
    atomic.write_json(Path(directory) / MARKER, {"kind": kind, "complete": bool(complete), "pid": os.getpid(),
                                                 "host": socket.gethostname()})


def _inside(a: Path, b: Path) -> bool:
    """a is b or lies inside b."""
    a, b = a.resolve(), b.resolve()
    return a == b or b in a.parents


def check_out_dir(out: Path, kind: str, flag: str = "--out", inputs: Iterable[Path] = ()) -> None:
    """Refuse an ``out`` that this ``kind`` of command may not write (see the module docstring)."""
    out = Path(out)
    for parent in [out, *out.parents]:
        if parent.exists() and not parent.is_dir():
            raise UserError(f"{flag} {out}: {parent} exists and is not a directory")
    for src in inputs:
        src = Path(src)
        if _inside(src, out) or _inside(out, src):
            raise UserError(f"{flag} {out}: would write over the input {src}; choose another {flag}")
    if out.is_dir() and any(not p.name.startswith(".") for p in out.iterdir()):  # hidden: markers, locks, temps
        found = kind_of(out)
        if found != kind:
            what = f"a {found} directory" if found else "a directory that no tcja_deploy command wrote"
            raise UserError(f"{flag} {out}: refusing to replace {what} (this command writes {kind} directories); "
                            f"choose an empty or new {flag}")


def check_complete(directory: Path, kind: str, legacy_file: str) -> None:
    """Refuse a ``kind`` directory that its command did not finish (no complete marker; before markers:
    no ``legacy_file``)."""
    marker = read_marker(directory)
    if marker is not None:
        if marker["kind"] != kind:
            raise UserError(f"{directory}: a {marker['kind']} directory, not a {kind} directory")
        if marker.get("complete") is not True:
            raise UserError(f"{directory}: incomplete {kind} directory (its command did not finish)")
        return
    if not (Path(directory) / legacy_file).is_file():
        raise UserError(f"{directory}: incomplete {kind} directory (no {legacy_file}: its command did not finish)")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_temporaries(target: Path) -> list[Path]:
    """Remove the temporary folders and files that killed commands left next to ``target``
    (``atomic``'s ``.<name>.<pid>.*`` whose process is gone); returns what was removed."""
    target = Path(target)
    removed = []
    if not target.parent.is_dir():
        return removed
    for p in target.parent.glob(f".{target.name}.*"):
        pid = atomic.owner_pid(p.name, target.name)
        if pid is None or pid == os.getpid() or _alive(pid):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p)
    return removed
