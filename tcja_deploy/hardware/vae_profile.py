"""``profile`` for a VAE deploy directory: the decoder on the chip per generated image and per reconstruction.

Two workloads, each a standard profile directory (:mod:`tcja_deploy.hardware.profiling`'s ``profile.json`` and
``raster.npz``, every count "per inference" = per decoded image) written by the same driver and counters:

- ``generation/``: the decoder on the prior latent trains of ``latents.npz`` (sampled on the host);
- ``reconstruction/``: the decoder on the test images' posterior latent trains (the encoder runs on the host).

Backends: ``emulator`` (bit-exact, every latent train by default) and ``lava-sim`` (the decoder built from Lava's
standard processes, :func:`tcja_deploy.hardware.vae_lava.run_chain_lava`, with the Sparse matrices of
``synapses.npz``; :data:`LAVA_DEFAULT_SAMPLES` by default). The top ``profile.json``
(``"format": "tcja_deploy.vae_profile/1"``) adds what the host does per image (:mod:`tcja_deploy.hardware.vae_host`)
and the totals per generated image and per reconstruction::

    {"format", "kind": "vae", "partial", "created", "backend", "deploy": {"dir", "hash", "files"}, "T",
     "workloads": {"generation" | "reconstruction": {
         "dir", "samples", "chip": {"spikes", "synops", "neuron_updates", "neurons", "synapses", "cores", "chips",
                                   "energy_pj": {scenario: mean pJ}},
         "host": {part: {"counts": {...}, "energy_pj": {"fp32", "int8"}}},
         "per_image_pj": {"loihi2_chip", "host_fp32", "loihi2_chip_plus_host", "ann_decoder_fp32",
                          "ann_decoder_int8", "ann_vae_fp32", "ann_vae_int8"}}},
     "fidelity": the deploy directory's fidelity.json, "caveats": [...]}

The equivalent-ANN VAE decoder is the same decoder run once densely (the sub-profiles' ``ann_cmos`` and
``ann_cmos_int8`` rows, TCJA at T = 1) plus its output transposed conv (the host readout's conv, charged the same
way); ``ann_vae_*`` adds what the ANN VAE would also run on the same device: nothing for generation (a Gaussian
prior draw, not charged) and the encoder for a reconstruction (the same counts as the spiking encoder's convs at
one step; :func:`ann_encoder_counts`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import numpy as np

from tcja_deploy import atomic, outputs
from tcja_deploy.conversion import graph as g
from tcja_deploy.conversion import vae_deploy as VD
from tcja_deploy.conversion.deploy_dir import GRAPH_FILE, Deploy
from tcja_deploy.conversion.execute import infer_shapes
from tcja_deploy.conversion.layers import layer_plan, payload_bits
from tcja_deploy.errors import UserError
from tcja_deploy.hardware import energy as E
from tcja_deploy.hardware import vae_host as H
from tcja_deploy.hardware.activity import NetworkActivity, as_events, layer_activities
from tcja_deploy.hardware.backends import EmulatorBackend
from tcja_deploy.hardware.lava_runtime import import_lava_runtime
from tcja_deploy.hardware.profile_doc import versions
from tcja_deploy.hardware.profiling import check_counts, profile_batches

FORMAT = "tcja_deploy.vae_profile/1"
KIND = "vae-profile"
WORKLOADS = ("generation", "reconstruction")
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
        return [GRAPH_FILE, VD.LATENT_FILE]


@dataclass
class VAELavaBackend:
    """Lava's CPU simulator on the decoder (:func:`~tcja_deploy.hardware.vae_lava.run_chain_lava`), its Sparse
    synapses loaded from ``synapses.npz`` (checked against the graph); images by the host readout."""

    name: str = "lava-sim"
    chunk_size: int = 4
    default_samples: Optional[int] = LAVA_DEFAULT_SAMPLES
    matrices: dict = field(default_factory=dict)

    def prepare(self) -> None:
        import_lava_runtime()

    def files(self, deploy: Deploy) -> list[str]:
        self.matrices = VD.load_synapses(deploy.path(VD.SYNAPSE_FILE), deploy.graph)
        return [GRAPH_FILE, VD.SYNAPSE_FILE, VD.LATENT_FILE]

    def run(self, deploy: Deploy, frames: np.ndarray, labels: np.ndarray) -> NetworkActivity:
        import torch

        from tcja_deploy.conversion.execute import image_readout
        from tcja_deploy.conversion.layers import latency_steps
        from tcja_deploy.hardware.vae_lava import run_chain_lava

        graph = deploy.graph
        shapes = infer_shapes(graph)
        z = torch.from_numpy(np.ascontiguousarray(frames))
        lava = run_chain_lava(graph, z, self.matrices or None)
        produced: dict[str, np.ndarray] = {graph.names[0]: (frames > 0.5).astype(np.int64)}
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
        last = graph.names[graph.names.index(host[0]) - 1]
        images = image_readout(torch.from_numpy(produced[last]).to(torch.float64), graph.nodes[host[0]]).numpy()
        return NetworkActivity(layers=layer_activities(graph, ins, outs), scores=images, labels=labels,
                               steps=int(graph.meta["T"]), backend=self.name,
                               extra={"latency_steps": latency_steps(graph), "lava_seconds": lava.seconds})


def get_vae_backend(name: str):
    if name == "emulator":
        return VAEEmulatorBackend()
    if name == "lava-sim":
        return VAELavaBackend()
    raise UserError(f"--backend {name}: a VAE deploy directory runs on {' or '.join(VAE_BACKENDS)} "
                    f"(Loihi 2 hardware needs Intel's lava-loihi)")


def _batches(z: np.ndarray, n: int, chunk: int):
    for start in range(0, n, chunk):
        zc = z[:, start:min(start + chunk, n)].astype(np.float32)
        yield zc, np.full(zc.shape[1], -1, dtype=np.int64)  # no labels: the decoder's "scores" are images


def _chip_summary(doc: dict) -> dict:
    t = doc["total"]
    return {"spikes": t["counts"]["spikes"]["mean"], "synops": t["counts"]["synops"]["mean"],
            "neuron_updates": t["counts"]["neuron_updates"]["mean"], "neurons": t["resources"]["neurons"],
            "synapses": t["resources"]["synapses"], "cores": t["resources"]["cores"], "chips": t["resources"]["chips"],
            "energy_pj": {k: v["total"]["mean"] for k, v in doc["energy"]["scenarios"].items()}}


def ann_encoder_counts(enc: dict, T: int) -> dict:
    """The ANN VAE's encoder: the spiking encoder's conv/linear counts at one step (÷ T); its Gaussian posterior
    draw is not charged."""
    return {k: int(enc[k]) // max(T, 1) if k != "weights" else int(enc[k]) for k in H.HOST_KEYS}


def workload_summary(name: str, doc: dict, host_doc: dict, cmos: E.EnergyProfile, T: int) -> dict:
    """One workload's row of the top profile: chip counts, host parts and the per-image energies (pJ)."""
    parts = {"readout": host_doc["readout"]["counts_per_image"]}
    if name == "generation":
        parts["prior"] = host_doc["prior"]["counts_per_generated_image"]
    else:
        parts["encoder"] = host_doc["encoder"]["counts_per_reconstruction"]
    host = {p: {"counts": c, "energy_pj": H.host_energy(c, cmos)} for p, c in parts.items()}
    chip = _chip_summary(doc)
    host_fp32 = sum(h["energy_pj"]["fp32"] for h in host.values())
    ro = host["readout"]["energy_pj"]
    ann_fp32 = chip["energy_pj"]["ann_cmos"] + ro["fp32"]
    ann_int8 = chip["energy_pj"]["ann_cmos_int8"] + ro["int8"]
    extra = {"fp32": 0.0, "int8": 0.0}
    if name == "reconstruction":
        extra = H.host_energy(ann_encoder_counts(parts["encoder"], T), cmos)
    return {"dir": name, "samples": doc["samples"]["done"], "partial": doc["partial"], "chip": chip, "host": host,
            "per_image_pj": {"loihi2_chip": chip["energy_pj"]["snn_chip"], "host_fp32": host_fp32,
                             "loihi2_chip_plus_host": chip["energy_pj"]["snn_chip"] + host_fp32,
                             "ann_decoder_fp32": ann_fp32, "ann_decoder_int8": ann_int8,
                             "ann_vae_fp32": ann_fp32 + extra["fp32"], "ann_vae_int8": ann_int8 + extra["int8"]}}


CAVEATS = [
    "Per image: one decoded latent train (T steps). The chip rows count the decoder's on-chip layers (every LIF, "
    "every transposed conv as one Sparse synapse, every TCJA gate on neuro cores) with the classifier's counters "
    "and energy profiles.",
    "Host parts are charged like the equivalent ANN (45 nm CMOS, ideal reuse): a lower bound for a host CPU. The "
    "prior's random draws and the transfer of z to the chip are counted, not charged (no cited figure).",
    "The ANN VAE decoder runs the same layers once (TCJA at T = 1) plus its output conv; its Gaussian prior draw is "
    "not charged; for a reconstruction it adds the encoder's convs at one step.",
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
    latents = VD.load_latents(deploy.path(VD.LATENT_FILE), T, L)
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
    for name, key in (("generation", "prior"), ("reconstruction", "posterior")):
        z = latents[key]
        n = z.shape[1] if n_req is None else min(int(n_req), z.shape[1])
        meta = {"backend": backend.name, "workload": name, "deploy": deploy_meta,
                "inputs": {"split": "latents.npz:" + key, "first_index": 0, "samples": 0, "hash": None},
                "versions": top["versions"],
                "samples": {"requested": n_req, "split": "latents.npz:" + key, "first_index": 0, "selected": n}}
        doc = profile_batches(_batches(z, n, chunk), backend, deploy, out_dir / name, profiles, meta, n, progress)
        top["workloads"][name] = workload_summary(name, doc, deploy.doc["host"], profiles["cmos"], T)
    top["partial"] = False
    top["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    atomic.write_json(out_dir / "profile.json", top)
    outputs.write_marker(out_dir, KIND)
    return top


def summary_rows(top: dict) -> list[tuple[str, str, str]]:
    """(quantity, value, unit) rows of a VAE profile, per generated image and per reconstruction."""
    rows = []
    for name in WORKLOADS:
        w = top["workloads"].get(name)
        if w is None:
            continue
        per = "per generated image" if name == "generation" else "per reconstruction"
        c, e = w["chip"], w["per_image_pj"]
        rows += [(f"{name}: spikes", f"{c['spikes']:.0f}", per), (f"{name}: SynOps", f"{c['synops']:.0f}", per),
                 (f"{name}: neuron updates", f"{c['neuron_updates']:.0f}", per),
                 (f"{name}: Loihi 2 cores", f"{c['cores']}", f"{c['chips']} chip(s)"),
                 (f"{name}: energy on chip", f"{e['loihi2_chip'] / 1e6:.3f}", "µJ " + per + " (Loihi 2 estimate)"),
                 (f"{name}: energy on host", f"{e['host_fp32'] / 1e6:.3f}", "µJ " + per + " (45 nm fp32)"),
                 (f"{name}: ANN VAE fp32 / int8", f"{e['ann_vae_fp32'] / 1e6:.3f} / {e['ann_vae_int8'] / 1e6:.3f}",
                  "µJ " + per + " (45 nm)")]
    return rows
