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
from tcja_deploy import outputs
from tcja_deploy.conversion.execute import infer_shapes
from tcja_deploy.conversion.graph import ConversionError
from tcja_deploy.errors import UserError, one_line
from tcja_deploy.models.specs import MAX_T

GRAPH_FILE = "graph.json"
#: Types of the fields of ``segments[]`` and ``gates[]`` entries that readers use.
SEGMENT_KEYS = {"index": int, "file": str, "input_from": str, "input_payload_bits": int, "nodes": list, "layers": list}
GATE_KEYS = {"index": int, "node": str, "file": str, "squeeze_from": str, "mode": str, "payload_bits": int,
             "s_shape": list, "x_shape": list}


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


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

    def gate_arrays(self, name: str) -> dict:
        """The arrays of gate file ``name`` (``np.load`` without pickles); a missing, truncated, pickled or
        incomplete file → one-line UserError naming it."""
        import zipfile

        import numpy as np

        from tcja_deploy.conversion.graph import NC_GATE_PARAM_KEYS, QGATE_PARAM_KEYS

        p = self.path(name)
        try:
            with np.load(p, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise UserError(f"{p}: not a gate file this version reads ({type(e).__name__}: {one_line(e)})") from None
        neurocore = "placement" in arrays and str(arrays["placement"]) == "neurocore"
        missing = [k for k in (NC_GATE_PARAM_KEYS if neurocore else QGATE_PARAM_KEYS) if k not in arrays]
        if missing:
            raise UserError(f"{p}: gate file lacks {missing}")
        return arrays

    def check_segment_file(self, name: str) -> Path:
        """The path of NetX file ``name`` after checking it is HDF5 with a ``layer`` group (else one line)."""
        import h5py

        p = self.path(name)
        try:
            with h5py.File(p, "r") as f:
                if "layer" not in f or not len(f["layer"]):
                    raise ValueError("no 'layer' group")
        except (OSError, ValueError, KeyError) as e:
            raise UserError(f"{p}: not a NetX HDF5 network ({one_line(e)})") from None
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


def read_deploy(deploy_dir: str | Path, require_complete: bool = True, kind: str = "deploy") -> Deploy:
    """Parse ``deploy_dir/graph.json``; a missing, malformed or incomplete deploy directory → one-line
    :class:`UserError` (``require_complete=False``: the convert's own check of the directory it is writing).
    ``kind``: the marker kind expected (``"deploy"``: a classifier's; ``"vae-deploy"``:
    :func:`tcja_deploy.conversion.vae_deploy.read_vae_deploy`); a directory of the other kind → one line."""
    deploy_dir = Path(deploy_dir)
    path = deploy_dir / GRAPH_FILE
    if not deploy_dir.is_dir():
        raise UserError(f"{deploy_dir}: no such directory")
    if not path.is_file():
        raise UserError(f"{deploy_dir}: not a deploy directory (no {GRAPH_FILE}); run python -m tcja_deploy.convert "
                        f"first")
    try:
        data = path.read_bytes()
        doc = json.loads(data)
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read it ({e.__class__.__name__})") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not valid JSON ({e.msg}, line {e.lineno})") from None
    if kind == "deploy" and isinstance(doc, dict) and doc.get("kind") == "vae":
        raise UserError(f"{deploy_dir}: a spiking-VAE deploy directory (image generation), not a classifier's; "
                        f"this command takes classifier deploy directories")
    try:
        graph = g.Graph.from_dict(doc)
        infer_shapes(graph)  # every node fits its input: swapped or inconsistent shapes stop here
    except (ConversionError, KeyError, TypeError) as e:
        raise UserError(f"{path}: not a graph this version reads ({e})") from None
    if require_complete:
        outputs.check_complete(deploy_dir, kind, "fidelity.json")
    T = graph.meta.get("T")
    if isinstance(T, bool) or not isinstance(T, int) or not 1 <= T <= MAX_T:
        raise UserError(f"{path}: meta.T must be an integer in [1, {MAX_T}], got {T!r}")
    for key, fields in (("segments", SEGMENT_KEYS), ("gates", GATE_KEYS)):
        entries = doc.get(key)
        if entries is None:
            continue
        if not isinstance(entries, list):
            raise UserError(f"{path}: {key!r} must be a list")
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise UserError(f"{path}: {key}[{i}] must be an object")
            for name, typ in fields.items():
                if name in entry and entry[name] is not None and not isinstance(entry[name], typ):
                    raise UserError(f"{path}: {key}[{i}].{name} must be a {typ.__name__}")
            unknown = [n for n in entry.get("nodes", []) + [entry.get("node")] if n is not None and n not in graph.nodes]
            if unknown:
                raise UserError(f"{path}: {key}[{i}] names node(s) {unknown} that the graph lacks")
    deploy = Deploy(deploy_dir, doc, graph)
    deploy.loaded[GRAPH_FILE] = _sha256(data)  # the bytes parsed above, not a second read
    return deploy
