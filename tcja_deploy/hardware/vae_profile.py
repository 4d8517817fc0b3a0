"""``profile`` for a VAE deploy directory: the chip (encoder, decoder) and the host per generated image and per
reconstruction.

Three standard profile directories (:mod:`tcja_deploy.hardware.profiling`'s ``profile.json`` and ``raster.npz``,
every count "per inference" = per image) written by the same driver and counters:

- ``generation/``: the decoder on the prior latent trains of ``latents.npz`` (sampled on the host);
- ``reconstruction/``: the decoder on the test images' posterior latent trains;
- ``reconstruction_encoder/``: the encoder on the test images themselves (``latents.npz:images``), the chip half
  of a reconstruction that comes before the host's posterior.

Backends: ``emulator`` (bit-exact, every latent train by default) and ``lava-sim`` (the decoder built from Lava's
standard processes, :func:`tcja_deploy.hardware.vae_lava.run_chain_lava`, with the Sparse matrices of
``synapses.npz``; :data:`LAVA_DEFAULT_SAMPLES` by default). The top ``profile.json``
(``"format": "tcja_deploy.vae_profile/1"``) adds what the host does per image (:mod:`tcja_deploy.hardware.vae_host`)
and the totals per generated image and per reconstruction (for a reconstruction, ``chip`` = encoder + decoder, each
also under ``chip_parts``)::

    {"format", "kind": "vae", "partial", "created", "backend", "deploy": {"dir", "hash", "files"}, "T",
     "workloads": {"generation" | "reconstruction": {
         "dir", "samples", "chip": {"spikes", "synops", "neuron_updates", "neurons", "synapses", "cores", "chips",
                                   "energy_pj": {scenario: mean pJ}},
         "chip_parts": {"decoder" | "encoder": {"dir", "samples", chip's keys}},
         "host": {part: {"counts": {...}, "energy_pj": {"fp32", "int8", "random_bits", "transfer"}}},
         "per_image_pj": {"loihi2_chip", "host_fp32", "loihi2_chip_plus_host", "ann_decoder_fp32",
                          "ann_decoder_int8", "ann_vae_fp32", "ann_vae_int8"}}},
     "fidelity": the deploy directory's fidelity.json, "caveats": [...]}

The equivalent-ANN VAE decoder is the same decoder run once densely (the sub-profiles' ``ann_cmos`` and
``ann_cmos_int8`` rows, TCJA at T = 1) plus its output transposed conv (the host readout's conv, charged the same
way); ``ann_vae_*`` adds what the ANN VAE would also run on the same device: nothing for generation (a Gaussian
prior draw, not charged) and the encoder for a reconstruction (the encoder sub-profile's ``ann_cmos`` /
``ann_cmos_int8`` rows: the same encoder run once densely, TCJA at T = 1).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import numpy as np

from tcja_deploy import atomic, outputs
from tcja_deploy.conversion import graph as g
from tcja_deploy.conversion import vae_deploy as VD
from tcja_deploy.conversion.deploy_dir import GRAPH_FILE, Deploy
from tcja_deploy.conversion import fixed_point as Q
from tcja_deploy.conversion.execute import auto_batch_size, infer_shapes
from tcja_deploy.conversion.vae_graph import encoder_input
from tcja_deploy.conversion.layers import layer_plan, payload_bits
from tcja_deploy.errors import UserError
from tcja_deploy.hardware import energy as E
from tcja_deploy.hardware import vae_host as H
from tcja_deploy.hardware.activity import NetworkActivity, as_events, layer_activities
from tcja_deploy.hardware.backends import EmulatorBackend
from tcja_deploy.hardware.lava_runtime import import_lava_runtime
from tcja_deploy.hardware.profile_doc import versions
from tcja_deploy.hardware.profiling import check_counts, profile_batches
from tcja_deploy.hardware.resources import limit

FORMAT = "tcja_deploy.vae_profile/1"
KIND = "vae-profile"
WORKLOADS = ("generation", "reconstruction")
#: The encoder's sub-profile directory of a reconstruction.
ENCODER_DIR = "reconstruction_encoder"
VAE_BACKENDS = ("emulator", "lava-sim")
#: Latent trains per workload on the Lava simulator when --samples is not given (~3 s each for vae_digits).
LAVA_DEFAULT_SAMPLES = 8


def is_vae_deploy(deploy_dir: str | Path) -> bool:
    """Whether ``deploy_dir`` is a VAE deploy directory (its marker, else its graph.json's ``kind``)."""
    marker = outputs.read_marker(Path(deploy_dir))
    if marker is not None:
        return marker["kind"] == VD.KIND
    try:
        return json.loads((Path(deploy_dir) / GRAPH_FILE).read_text()).get("kind") == "vae"
    except (OSError, ValueError, AttributeError):
        return False


@dataclass
class VAEEmulatorBackend(EmulatorBackend):
    """The bit-exact emulator on the decoder graph (the classifier's backend); latents [T, n, L] in, images out
    (``scores``); it also loads the deploy's latent trains."""

    def files(self, deploy: Deploy) -> list[str]:
        return [GRAPH_FILE, VD.LATENT_FILE, deploy.doc["encoder"]["file"]]


@dataclass
class VAELavaBackend:
    """Lava's CPU simulator on the decoder or the encoder (:func:`~tcja_deploy.hardware.vae_lava.run_chain_lava`),
    its Sparse synapses loaded from ``synapse_file`` (checked against the graph); a decoder's images by the host
    readout, an encoder's "scores" its last layer's spikes [T, n, L] (as the emulator's)."""

    name: str = "lava-sim"
    chunk_size: int = 4
    default_samples: Optional[int] = LAVA_DEFAULT_SAMPLES
    matrices: dict = field(default_factory=dict)
    synapse_file: str = VD.SYNAPSE_FILE

    def prepare(self) -> None:
        import_lava_runtime()

    def files(self, deploy: Deploy) -> list[str]:
        self.matrices = VD.load_synapses(deploy.path(self.synapse_file), deploy.graph)
        return [GRAPH_FILE, self.synapse_file, VD.LATENT_FILE, deploy.doc["encoder"]["file"]]

    def run(self, deploy: Deploy, frames: np.ndarray, labels: np.ndarray) -> NetworkActivity:
        import torch

        from tcja_deploy.conversion.execute import image_readout
        from tcja_deploy.conversion.layers import latency_steps
        from tcja_deploy.hardware.vae_lava import run_chain_lava

        graph = deploy.graph
        shapes = infer_shapes(graph)
        z = torch.from_numpy(np.ascontiguousarray(frames))
        lava = run_chain_lava(graph, z, self.matrices or None)
        in_node = graph.nodes[graph.names[0]]
        produced: dict[str, np.ndarray] = {graph.names[0]: Q.input_payload(z, in_node).numpy().astype(np.int64)}
        prev = graph.names[0]
        for name, node in graph.items():
            if name in lava.outputs:
                produced[name] = lava.outputs[name]
            elif node.category == "reshape":
                a = produced[prev]
                produced[name] = a.reshape(a.shape[0], a.shape[1], *shapes[name])
            if name in produced:
                prev = name
        ins, outs = {}, {}
        for layer in layer_plan(graph):
            ins[layer.name] = as_events(produced[layer.input_from], payload_bits(graph, layer.input_from), True)
            outs[layer.name] = as_events(produced[layer.neuron], payload_bits(graph, layer.neuron), True)
        host = [n for n, node in graph.items() if isinstance(node, g.ImageReadout)]
        if host:
            last = graph.names[graph.names.index(host[0]) - 1]
            scores = image_readout(torch.from_numpy(produced[last]).to(torch.float64), graph.nodes[host[0]]).numpy()
        else:  # the encoder: its latent-input spikes
            scores = produced[graph.names[-1]].astype(np.float64)
        return NetworkActivity(layers=layer_activities(graph, ins, outs), scores=scores, labels=labels,
                               steps=int(graph.meta["T"]), backend=self.name,
                               extra={"latency_steps": latency_steps(graph), "lava_seconds": lava.seconds})


@dataclass
class EncoderBackend:
    """A VAE backend run on the encoder part of a deploy directory: frames are images [n, C, H, W], shown to the
    encoder as :func:`~tcja_deploy.conversion.vae_graph.encoder_input`; "scores" are its spikes x as [n, T, L]."""

    inner: object

    @property
    def name(self) -> str:
        return self.inner.name

    def prepare(self) -> None:
        prepare = getattr(self.inner, "prepare", None)
        if callable(prepare):
            prepare()

    def files(self, deploy: Deploy) -> list[str]:
        return self.inner.files(deploy)

    def run(self, deploy: Deploy, frames: np.ndarray, labels: np.ndarray) -> NetworkActivity:
        import torch

        x = encoder_input(torch.from_numpy(np.ascontiguousarray(frames)), int(deploy.graph.meta["T"]))
        activity = self.inner.run(deploy, x.numpy(), labels)
        activity.scores = np.moveaxis(np.asarray(activity.scores), 1, 0)  # [T, n, L] → [n, T, L]
        return activity


def encoder_part(deploy: Deploy) -> Deploy:
    """The deploy directory seen with its encoder graph (encoder.json) as ``graph``: what the backends run."""
    _, graph = VD.read_encoder(deploy)
    return dataclasses.replace(deploy, graph=graph)


def get_vae_backend(name: str, part: str = "decoder"):
    """The backend ``name`` for the ``decoder`` or the ``encoder`` of a VAE deploy directory."""
    if name not in VAE_BACKENDS:
        raise UserError(f"--backend {name}: a VAE deploy directory runs on {' or '.join(VAE_BACKENDS)} "
                        f"(Loihi 2 hardware needs Intel's lava-loihi)")
    if part == "encoder":
        inner = VAEEmulatorBackend() if name == "emulator" else VAELavaBackend(synapse_file=VD.ENCODER_SYNAPSE_FILE)
        return EncoderBackend(inner)
    if name == "emulator":
        return VAEEmulatorBackend()
    if name == "lava-sim":
        return VAELavaBackend()
    raise UserError(f"--backend {name}: a VAE deploy directory runs on {' or '.join(VAE_BACKENDS)} "
                    f"(Loihi 2 hardware needs Intel's lava-loihi)")


def _batches(z: np.ndarray, n: int, chunk: int, axis: int = 1):
    """Chunks of the first n samples of z along ``axis`` (1: trains [T, N, L]; 0: images [N, C, H, W])."""
    for start in range(0, n, chunk):
        zc = np.take(z, np.arange(start, min(start + chunk, n)), axis=axis).astype(np.float32)
        yield zc, np.full(zc.shape[axis], -1, dtype=np.int64)  # no labels: the "scores" are images or spikes


def _chip_summary(doc: dict) -> dict:
    t = doc["total"]
    return {"spikes": t["counts"]["spikes"]["mean"], "synops": t["counts"]["synops"]["mean"],
            "neuron_updates": t["counts"]["neuron_updates"]["mean"], "neurons": t["resources"]["neurons"],
            "synapses": t["resources"]["synapses"], "cores": t["resources"]["cores"], "chips": t["resources"]["chips"],
            "energy_pj": {k: v["total"]["mean"] for k, v in doc["energy"]["scenarios"].items()}}


def combine_chips(parts: dict[str, dict]) -> dict:
    """The chip row of encoder + decoder: counts, resources and energies summed; chips for the summed cores."""
    keys = ("spikes", "synops", "neuron_updates", "neurons", "synapses", "cores")
    out = {k: sum(p[k] for p in parts.values()) for k in keys}
    out["chips"] = math.ceil(out["cores"] / limit("cores_per_chip")) if out["cores"] else 0
    scenarios = set.intersection(*(set(p["energy_pj"]) for p in parts.values()))
    out["energy_pj"] = {s: sum(p["energy_pj"][s] for p in parts.values()) for s in sorted(scenarios)}
    return out


def workload_summary(name: str, doc: dict, host_doc: dict, cmos: E.EnergyProfile, T: int,
                     encoder_doc: Optional[dict] = None) -> dict:
    """One workload's row of the top profile: chip counts (a reconstruction's with the encoder's ``encoder_doc``),
    host parts and the per-image energies (pJ)."""
    if name == "generation":
        parts = {"prior": host_doc["prior"]["counts_per_generated_image"]}
    else:
        parts = {"image_input": host_doc["image_input"]["counts_per_reconstruction"],
                 "posterior": host_doc["posterior"]["counts_per_reconstruction"]}
    parts["readout"] = host_doc["readout"]["counts_per_image"]  # in the order they run
    host = {p: {"counts": c, "energy_pj": H.host_energy(c, cmos)} for p, c in parts.items()}
    decoder = _chip_summary(doc)
    chip_parts = {}  # in the order they run
    if encoder_doc is not None:
        chip_parts["encoder"] = {"dir": ENCODER_DIR, "samples": encoder_doc["samples"]["done"],
                                 **_chip_summary(encoder_doc)}
    chip_parts["decoder"] = {"dir": name, "samples": doc["samples"]["done"], **decoder}
    chip = combine_chips(chip_parts) if encoder_doc is not None else decoder
    host_fp32 = sum(h["energy_pj"]["fp32"] for h in host.values())
    ro = host["readout"]["energy_pj"]
    ann_fp32 = decoder["energy_pj"]["ann_cmos"] + ro["fp32"] - ro["transfer"]  # the ANN reads no chip payloads
    ann_int8 = decoder["energy_pj"]["ann_cmos_int8"] + ro["int8"] - ro["transfer"]
    extra = {"fp32": 0.0, "int8": 0.0}
    if encoder_doc is not None:
        enc = chip_parts["encoder"]["energy_pj"]
        extra = {"fp32": enc["ann_cmos"], "int8": enc["ann_cmos_int8"]}
    return {"dir": name, "samples": doc["samples"]["done"], "partial": doc["partial"] or bool(
                encoder_doc and encoder_doc["partial"]), "chip": chip, "chip_parts": chip_parts, "host": host,
            "per_image_pj": {"loihi2_chip": chip["energy_pj"]["snn_chip"], "host_fp32": host_fp32,
                             "loihi2_chip_plus_host": chip["energy_pj"]["snn_chip"] + host_fp32,
                             "ann_decoder_fp32": ann_fp32, "ann_decoder_int8": ann_int8,
                             "ann_vae_fp32": ann_fp32 + extra["fp32"], "ann_vae_int8": ann_int8 + extra["int8"]}}


CAVEATS = [
    "Per image: one decoded latent train (T steps); a reconstruction also runs the encoder on the image (T steps). "
    "The chip rows count the on-chip layers (every LIF, every conv and transposed conv as one Sparse synapse, every "
    "TCJA gate on neuro cores) with the classifier's counters and energy profiles; a reconstruction's chip row is "
    "the encoder's plus the decoder's.",
    "Host parts (prior or posterior, image readout, image input) are charged like the equivalent ANN (45 nm CMOS, "
    "ideal reuse): a lower bound for a host CPU; plus their random bits (a software xorshift32 priced with "
    "Horowitz's 32-bit integer add) and their host-chip bits (Horowitz's DRAM access per bit, a proxy for the "
    "off-chip link; dense frames for the image input and the readout's payloads, an upper bound).",
    "The ANN VAE decoder runs the same layers once (TCJA at T = 1) plus its output conv; its Gaussian prior draw is "
    "not charged; for a reconstruction it adds the same encoder run once densely. It moves no data across a chip "
    "boundary.",
]


def run_vae_profile(deploy_dir: str | Path, backend_name: str, out_dir: str | Path, samples: Optional[int] = None,
                    energy_profile: Optional[str | Path] = None, chunk_size: Optional[int] = None,
                    progress: bool = True) -> dict:
    """The ``profile`` pipeline for a VAE deploy directory; returns the top profile.json document."""
    check_counts(samples, chunk_size)
    profiles = E.resolve_profiles(energy_profile)
    backend = get_vae_backend(backend_name)
    deploy_dir, out_dir = Path(deploy_dir), Path(out_dir)
    outputs.check_out_dir(out_dir, KIND, inputs=[deploy_dir])
    deploy = VD.read_vae_deploy(deploy_dir)
    T, L = int(deploy.graph.meta["T"]), int(deploy.graph.meta["input_shape"][0])
    m = deploy.doc["model"]
    latents = VD.load_latents(deploy.path(VD.LATENT_FILE), T, L, (m.get("in_channels"), m.get("image_size"),
                                                                   m.get("image_size")))
    for name in backend.files(deploy):
        deploy.path(name)
    fidelity = VD.read_fidelity(deploy)
    n_req = samples if samples is not None else backend.default_samples
    chunk = int(chunk_size or backend.chunk_size)
    out_dir.mkdir(parents=True, exist_ok=True)
    outputs.write_marker(out_dir, KIND, complete=False)
    deploy_meta = {"dir": str(deploy_dir), "hash": deploy.combined_hash(), "files": deploy.file_hashes(),
                   "preset": deploy.graph.meta.get("preset"), "dataset": deploy.doc["model"].get("dataset"), "T": T}
    top = {"format": FORMAT, "kind": "vae", "partial": True, "backend": backend.name, "deploy": deploy_meta, "T": T,
           "versions": versions(), "workloads": {}, "fidelity": fidelity, "caveats": CAVEATS}
    enc_deploy = encoder_part(deploy)
    enc_backend = get_vae_backend(backend_name, "encoder")
    enc_backend.files(enc_deploy)
    enc_chunk = chunk if backend_name != "emulator" else min(chunk, auto_batch_size(enc_deploy.graph))

    def sub_profile(name: str, key: str, data: np.ndarray, axis: int, be, dep: Deploy, chunk_n: int) -> dict:
        n = data.shape[axis] if n_req is None else min(int(n_req), data.shape[axis])
        meta = {"backend": be.name, "workload": name, "deploy": deploy_meta,
                "inputs": {"split": "latents.npz:" + key, "first_index": 0, "samples": 0, "hash": None},
                "versions": top["versions"],
                "samples": {"requested": n_req, "split": "latents.npz:" + key, "first_index": 0, "selected": n}}
        return profile_batches(_batches(data, n, chunk_n, axis), be, dep, out_dir / name, profiles, meta, n, progress)

    for name, key in (("generation", "prior"), ("reconstruction", "posterior")):
        doc = sub_profile(name, key, latents[key], 1, backend, deploy, chunk)
        enc_doc = None
        if name == "reconstruction":  # the chip's first half: the encoder on the images themselves
            enc_doc = sub_profile(ENCODER_DIR, "images", latents["images"], 0, enc_backend, enc_deploy, enc_chunk)
        top["workloads"][name] = workload_summary(name, doc, deploy.doc["host"], profiles["cmos"], T, enc_doc)
    top["partial"] = False
    top["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    atomic.write_json(out_dir / "profile.json", top)
    outputs.write_marker(out_dir, KIND)
    return top


def summary_rows(top: dict) -> list[tuple[str, str, str]]:
    """(quantity, value, unit) rows of a VAE profile, per generated image and per reconstruction (whose chip is the
    encoder's plus the decoder's, and whose host is the image input, the posterior and the readout)."""
    rows = []
    for name in WORKLOADS:
        w = top["workloads"].get(name)
        if w is None:
            continue
        per = "per generated image" if name == "generation" else "per reconstruction"
        c, e = w["chip"], w["per_image_pj"]
        parts = w.get("chip_parts", {})
        chip_what = " + ".join(parts) if len(parts) > 1 else "decoder"
        rows += [(f"{name}: spikes", f"{c['spikes']:.0f}", per), (f"{name}: SynOps", f"{c['synops']:.0f}", per),
                 (f"{name}: neuron updates", f"{c['neuron_updates']:.0f}", per),
                 (f"{name}: Loihi 2 cores", f"{c['cores']}", f"{c['chips']} chip(s)"),
                 (f"{name}: energy on chip ({chip_what})", f"{e['loihi2_chip'] / 1e6:.3f}",
                  "µJ " + per + " (Loihi 2 estimate)")]
        if len(parts) > 1:
            rows += [(f"{name}: chip, {p}", f"{v['energy_pj']['snn_chip'] / 1e6:.3f}",
                      f"µJ; {v['synops']:.0f} SynOps, {v['cores']} cores") for p, v in parts.items()]
        rows += [(f"{name}: energy on host ({' + '.join(w['host'])})", f"{e['host_fp32'] / 1e6:.3f}",
                  "µJ " + per + " (45 nm fp32, random bits and host-chip transfer included)"),
                 (f"{name}: ANN VAE fp32 / int8", f"{e['ann_vae_fp32'] / 1e6:.3f} / {e['ann_vae_int8'] / 1e6:.3f}",
                  "µJ " + per + " (45 nm)")]
    return rows
