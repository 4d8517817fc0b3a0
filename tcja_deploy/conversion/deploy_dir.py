"""Reading a deploy directory: the one reader every consumer uses (profile backends, Lava runner, bench).

:func:`read_deploy` parses ``graph.json`` once into a :class:`Deploy`; files the document names are
opened through :meth:`Deploy.path`, which keeps them inside the directory, and their sha256 goes into
:meth:`Deploy.file_hashes` so a profile can record exactly what it loaded.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from tcja_deploy.conversion import graph as g
from tcja_deploy.conversion.graph import ConversionError
from tcja_deploy.errors import UserError

GRAPH_FILE = "graph.json"
#: The longest window a deploy directory may declare (time steps per sample).
MAX_T = 4096


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return "sha256:" + h.hexdigest()


@dataclass
class Deploy:
    """A parsed deploy directory.

    Attributes:
        dir: the directory.
        doc: the whole ``graph.json`` document (graph keys plus ``target``, ``segments``, ``gates``, ``lava``, …).
        graph: the converted graph.
        loaded: relative path → sha256 of every file read through this object (``graph.json`` included).
    """

    dir: Path
    doc: dict
    graph: g.Graph
    loaded: dict[str, str] = field(default_factory=dict)

    @property
    def target(self) -> str:
        return str(self.doc.get("target", "loihi2"))

    @property
    def segments(self) -> list[dict]:
        return list(self.doc.get("segments") or [])

    @property
    def gates(self) -> list[dict]:
        return list(self.doc.get("gates") or [])

    def path(self, name: str) -> Path:
        """The path of file ``name`` the document names, confined to the directory (no absolute paths, no
        ``..``, no symlink leading out); its sha256 is recorded in :attr:`loaded`."""
        where = self.dir / GRAPH_FILE
        if not isinstance(name, str) or not name or Path(name).is_absolute() or ".." in Path(name).parts:
            raise UserError(f"{where}: file reference {name!r} must be a plain name inside the deploy directory")
        p = self.dir / name
        try:
            resolved = p.resolve(strict=True)
        except (FileNotFoundError, RuntimeError, OSError):
            raise UserError(f"{where}: names {name!r}, which is missing from {self.dir}") from None
        if self.dir.resolve() not in resolved.parents or not resolved.is_file():
            raise UserError(f"{where}: file reference {name!r} leads outside the deploy directory")
        if name not in self.loaded:
            self.loaded[name] = sha256_file(p)
        return p

    def file_hashes(self) -> dict[str, str]:
        """{relative path: "sha256:…"} of every file loaded so far, sorted by path."""
        return dict(sorted(self.loaded.items()))

    def combined_hash(self) -> str:
        """One sha256 over :meth:`file_hashes` (path and file hash of each, in path order)."""
        h = hashlib.sha256()
        for name, digest in self.file_hashes().items():
            h.update(name.encode() + b"\0" + digest.encode() + b"\0")
        return "sha256:" + h.hexdigest()


def read_deploy(deploy_dir: str | Path) -> Deploy:
    """Parse ``deploy_dir/graph.json``; a missing or malformed document → one-line :class:`UserError`."""
    deploy_dir = Path(deploy_dir)
    path = deploy_dir / GRAPH_FILE
    if not deploy_dir.is_dir():
        raise UserError(f"{deploy_dir}: no such directory")
    if not path.is_file():
        raise UserError(f"{deploy_dir}: not a deploy directory (no {GRAPH_FILE}); run python -m tcja_deploy.convert "
                        f"first")
    try:
        text = path.read_text()
        doc = json.loads(text)
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read it ({e.__class__.__name__})") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not valid JSON ({e.msg}, line {e.lineno})") from None
    try:
        graph = g.Graph.from_dict(doc)
    except (ConversionError, KeyError, TypeError) as e:
        raise UserError(f"{path}: not a graph this version reads ({e})") from None
    T = graph.meta.get("T")
    if isinstance(T, bool) or not isinstance(T, int) or not 1 <= T <= MAX_T:
        raise UserError(f"{path}: meta.T must be an integer in [1, {MAX_T}], got {T!r}")
    for key in ("segments", "gates"):
        if doc.get(key) is not None and not isinstance(doc[key], list):
            raise UserError(f"{path}: {key!r} must be a list")
    deploy = Deploy(deploy_dir, doc, graph)
    deploy.loaded[GRAPH_FILE] = sha256_file(path)
    return deploy
