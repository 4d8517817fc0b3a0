"""The spiking VAE's deploy directory: what ``convert --target loihi2`` writes for a VAE run and how it is read back.

A VAE deploy directory (docs/FORMATS.md §1.7; marker kind ``vae-deploy``, so the classifier's readers refuse it
with one line, and :func:`read_vae_deploy` refuses a classifier's)::

    graph.json      the fixed-point decoder graph (conversion/graph.py schema) plus
                    "kind": "vae", "target": "loihi2", "source_run", "model": the VAEConfig,
                    "synapses": {"file": "synapses.npz", "layers": [{"node", "shape": [out, in], "nnz",
                                 "input_payload_bits"}]},
                    "latents": {"file": "latents.npz", "prior": N, "posterior": N, "seed"},
                    "placement": {node: "chip" | "host"}, "lags": {node: Lava step of sample 0, step 0},
                    "host": what runs on the host per image, with its operation counts (DESIGN.md §13),
                    "encoder": {"file": "encoder.json", "synapses": "encoder_synapses.npz"},
                    "files": every file of the directory
    encoder.json    the fixed-point encoder graph (same schema; input = the sign-split image) plus "kind":
                    "vae-encoder", "synapses" and "lags" as graph.json's, "placement"
    encoder_synapses.npz  the encoder's Sparse matrices, as synapses.npz (a conv's is
                    :func:`~tcja_deploy.conversion.transposed.conv_matrix`)
    synapses.npz    per synapse node ``<node>.data`` int32, ``<node>.indices`` int32, ``<node>.indptr`` int32,
                    ``<node>.shape`` int64 [2]: the CSR matrix [out_neurons, in_neurons] of its Lava ``Sparse``
                    (C-major neurons); a transposed conv's is :func:`~tcja_deploy.conversion.transposed.transposed_matrix`
    latents.npz     ``prior`` uint8 [T, N, L]: latent spike trains the host sampled from the prior (the profile's
                    generated images); ``posterior`` uint8 [T, M, L]: one posterior sample per test image (its
                    reconstructions); ``labels`` int64 [M] of those test images; ``images`` float32
                    [M, C, H, W] in [−1, 1]: the test images themselves (the encoder's input)
    fidelity.json   float vs fixed point (PSNR, reconstruction MSE, FID) and Lava vs emulator
                    (:mod:`tcja_deploy.hardware.vae_convert`)

Every file is checked on load: a missing key, a wrong dtype or shape, or a synapse matrix that is not the one
the graph's weights define → one-line :class:`~tcja_deploy.errors.UserError` naming the file.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
from scipy import sparse as sp

from tcja_deploy.conversion import graph as g
from tcja_deploy.conversion.deploy_dir import Deploy, read_deploy
from tcja_deploy.conversion.execute import infer_shapes
from tcja_deploy.conversion.transposed import conv_matrix, transposed_matrix
from tcja_deploy.errors import UserError, one_line

KIND = "vae-deploy"
SYNAPSE_FILE = "synapses.npz"
LATENT_FILE = "latents.npz"
FIDELITY_FILE = "fidelity.json"
ENCODER_FILE = "encoder.json"
ENCODER_SYNAPSE_FILE = "encoder_synapses.npz"
SYNAPSE_FIELDS = ("data", "indices", "indptr", "shape")
#: graph.json ``host``: part → the key of its per-image counts, and the counts every part holds.
HOST_PARTS = {"prior": "counts_per_generated_image", "readout": "counts_per_image",
              "posterior": "counts_per_reconstruction", "image_input": "counts_per_reconstruction"}
HOST_COUNT_KEYS = ("macs", "activations", "weights", "inputs", "outputs")


def synapse_matrix(node: g.Node, in_shape: tuple[int, ...]) -> sp.csr_matrix:
    """The integer matrix [out_neurons, in_neurons] (csr, int32, sorted indices) of a ``q_linear``,
    ``q_conv_transpose2d`` or (encoder, groups 1) ``q_conv2d`` node whose per-step input has ``in_shape``."""
    if isinstance(node, g.QLinear):
        m = sp.csr_matrix(np.asarray(node.weight, dtype=np.int32))
    elif isinstance(node, g.QConvTranspose2d):
        m = transposed_matrix(np.asarray(node.weight, dtype=np.int32), tuple(in_shape), node.stride, node.padding,
                              node.output_padding)
    elif isinstance(node, g.QConv2d) and node.groups == 1:
        m = conv_matrix(np.asarray(node.weight, dtype=np.int32), tuple(in_shape), node.stride, node.padding)
    else:
        raise UserError(f"{node.kind} node: a VAE synapse is q_linear, q_conv_transpose2d or q_conv2d (groups 1)")
    m = m.astype(np.int32)
    m.sort_indices()
    return m


def synapse_matrices(graph: g.Graph) -> dict[str, sp.csr_matrix]:
    """{synapse node: its Sparse matrix} of a fixed-point decoder graph, in graph order."""
    shapes = infer_shapes(graph)
    names = graph.names
    return {n: synapse_matrix(node, shapes[names[names.index(n) - 1]])
            for n, node in graph.items() if node.category == "synapse"}


def write_synapses(path: Path, matrices: dict[str, sp.csr_matrix]) -> None:
    arrays = {}
    for name, m in matrices.items():
        arrays[f"{name}.data"] = m.data.astype(np.int32)
        arrays[f"{name}.indices"] = m.indices.astype(np.int32)
        arrays[f"{name}.indptr"] = m.indptr.astype(np.int32)
        arrays[f"{name}.shape"] = np.asarray(m.shape, dtype=np.int64)
    np.savez(path, **arrays)


def _npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise UserError(f"{path}: not an npz file this version reads ({type(e).__name__}: {one_line(e)})") from None


def load_synapses(path: Path, graph: g.Graph) -> dict[str, sp.csr_matrix]:
    """The Sparse matrices of ``synapses.npz``, each checked against the graph: present, integer CSR of the
    layer's [out_neurons, in_neurons] shape, and equal entry for entry to the matrix its weights define."""
    arrays = _npz(path)
    expected = synapse_matrices(graph)
    out = {}
    for name, ref in expected.items():
        missing = [f"{name}.{f}" for f in SYNAPSE_FIELDS if f"{name}.{f}" not in arrays]
        if missing:
            raise UserError(f"{path}: lacks {missing}")
        parts = {f: arrays[f"{name}.{f}"] for f in SYNAPSE_FIELDS}
        bad = [f for f, a in parts.items() if not np.issubdtype(a.dtype, np.integer)]
        if bad:
            raise UserError(f"{path}: {name}: {bad} must be integer arrays")
        shape = tuple(int(v) for v in parts["shape"].reshape(-1))
        if shape != tuple(ref.shape):
            raise UserError(f"{path}: {name}: matrix shape {list(shape)}, the graph's layer needs {list(ref.shape)}")
        try:
            m = sp.csr_matrix((parts["data"], parts["indices"], parts["indptr"]), shape=shape)
            m.check_format(full_check=True)
        except ValueError as e:
            raise UserError(f"{path}: {name}: not a valid CSR matrix ({one_line(e)})") from None
        if (m != ref).nnz:
            raise UserError(f"{path}: {name}: {(m != ref).nnz} entries differ from the graph's weights")
        out[name] = m.astype(np.int32)
    return out


def write_latents(path: Path, prior: np.ndarray, posterior: np.ndarray, labels: np.ndarray, images: np.ndarray
                  ) -> None:
    np.savez(path, prior=np.asarray(prior, dtype=np.uint8), posterior=np.asarray(posterior, dtype=np.uint8),
             labels=np.asarray(labels, dtype=np.int64), images=np.asarray(images, dtype=np.float32))


def load_latents(path: Path, T: int, L: int, image_shape: tuple[int, ...] | None = None) -> dict[str, np.ndarray]:
    """``latents.npz``: {"prior" [T, N, L], "posterior" [T, M, L]} uint8 spikes, "labels" [M] int64 and "images"
    [M, C, H, W] float32 in [−1, 1] (checked against ``image_shape`` (C, H, W) when given)."""
    arrays = _npz(path)
    for key in ("prior", "posterior", "labels", "images"):
        if key not in arrays:
            raise UserError(f"{path}: lacks {key!r}")
    for key in ("prior", "posterior"):
        a = arrays[key]
        if a.dtype != np.uint8 or a.ndim != 3 or a.shape[0] != T or a.shape[2] != L:
            raise UserError(f"{path}: {key!r} must be uint8 [T={T}, N, L={L}] spikes, got {a.dtype} {list(a.shape)}")
        if a.size and a.max() > 1:
            raise UserError(f"{path}: {key!r} holds values other than 0 and 1")
    lab = arrays["labels"]
    if not np.issubdtype(lab.dtype, np.integer) or lab.shape != (arrays["posterior"].shape[1],):
        raise UserError(f"{path}: 'labels' must be integers, one per posterior latent train")
    im = arrays["images"]
    want = (arrays["posterior"].shape[1], *(image_shape or im.shape[1:]))
    if im.dtype != np.float32 or im.ndim != 4 or im.shape != want:
        raise UserError(f"{path}: 'images' must be float32 {list(want)}, one per posterior latent train, got "
                        f"{im.dtype} {list(im.shape)}")
    if im.size and not (np.isfinite(im).all() and np.abs(im).max() <= 1):
        raise UserError(f"{path}: 'images' must hold finite values in [−1, 1]")
    return arrays


def read_vae_deploy(deploy_dir: str | Path) -> Deploy:
    """Parse and check a VAE deploy directory (graph, marker, synapse and latent files); one line on bad input.

    Returns the :class:`~tcja_deploy.conversion.deploy_dir.Deploy` (its ``path`` confines and hashes files)."""
    deploy = read_deploy(deploy_dir, kind=KIND)
    where = deploy.dir / "graph.json"
    if deploy.doc.get("kind") != "vae":
        raise UserError(f"{where}: not a VAE deploy document (kind={deploy.doc.get('kind')!r})")
    for key in ("synapses", "latents", "host", "model"):
        if not isinstance(deploy.doc.get(key), dict):
            raise UserError(f"{where}: lacks the {key!r} object of a VAE deploy directory")
    if not deploy.graph.quantized:
        raise UserError(f"{where}: the decoder graph is not fixed point")
    host = deploy.doc["host"]
    for part, key in HOST_PARTS.items():
        counts = host.get(part, {}).get(key) if isinstance(host.get(part), dict) else None
        if not isinstance(counts, dict) or not all(isinstance(counts.get(k), int) for k in HOST_COUNT_KEYS):
            raise UserError(f"{where}: host.{part}.{key} must hold the integer counts {list(HOST_COUNT_KEYS)}")
    enc = deploy.doc.get("encoder")
    if not isinstance(enc, dict) or not all(isinstance(enc.get(k), str) for k in ("file", "synapses")):
        raise UserError(f"{where}: lacks the 'encoder' object {{\"file\", \"synapses\"}} of a VAE deploy directory")
    return deploy


def read_encoder(deploy: Deploy) -> tuple[dict, g.Graph]:
    """(encoder.json's document, its fixed-point encoder graph) of a VAE deploy directory; one line on bad input."""
    import json

    p = deploy.path(deploy.doc["encoder"]["file"])
    try:
        doc = json.loads(p.read_text())
        graph = g.Graph.from_dict(doc)
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise UserError(f"{p}: not a readable encoder graph ({type(e).__name__}: {one_line(e)})") from None
    if doc.get("kind") != "vae-encoder" or not graph.quantized:
        raise UserError(f"{p}: not a fixed-point VAE encoder graph (kind={doc.get('kind')!r})")
    for key in ("synapses", "lags"):
        if not isinstance(doc.get(key), dict):
            raise UserError(f"{p}: lacks the {key!r} object")
    return doc, graph


def read_fidelity(deploy: Deploy) -> dict:
    """The deploy directory's fidelity.json (one line if it is missing or not a JSON object)."""
    import json

    p = deploy.path(FIDELITY_FILE)
    try:
        doc = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise UserError(f"{p}: not readable JSON ({type(e).__name__}: {one_line(e)})") from None
    if not isinstance(doc, dict):
        raise UserError(f"{p}: must be a JSON object")
    return doc
