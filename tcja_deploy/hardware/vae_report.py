"""``report`` for a VAE profile: energy per generated image and per reconstruction, the fidelity figures, and the
classifier-style report of each workload.

Writes into ``--out`` (atomically; marker kind ``vae-report``): ``report.md`` (per-image table, host parts, the
equivalent-ANN VAE, fidelity), ``tables.tex`` (booktabs), ``summary.csv``, ``energy_per_image.png`` (stacked chip
and host energy beside the ANN VAE), a copy of ``profile.json``, and ``generation/``, ``reconstruction/`` (the
decoder) and ``reconstruction_encoder/`` (the encoder): the report of each sub-profile (:func:`tcja_deploy.hardware.report_writer.write_report`: layer tables,
firing-rate, SynOps, energy-breakdown and raster plots).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Optional

from tcja_deploy import atomic, outputs
from tcja_deploy.errors import UserError
from tcja_deploy.hardware import report_writer as R
from tcja_deploy.hardware.vae_profile import ENCODER_DIR, FORMAT, WORKLOADS, summary_rows

KIND = "vae-report"
PER = {"generation": "per generated image", "reconstruction": "per reconstruction"}


def is_vae_profile(path: str | Path) -> bool:
    """Whether ``path`` (a profile dir or its profile.json) holds a VAE profile."""
    path = Path(path)
    pj = path / "profile.json" if path.is_dir() else path
    try:
        return json.loads(pj.read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def load_vae_profile(path: str | Path) -> tuple[dict, Path]:
    """(top profile document, profile dir); a missing, partial or malformed VAE profile → one-line UserError."""
    path = Path(path)
    pj = path / "profile.json" if path.is_dir() else path
    try:
        doc = json.loads(pj.read_text())
    except OSError:
        raise UserError(f"--profile {path}: no profile.json there; run python -m tcja_deploy.profile first") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{pj}: not valid JSON ({e.msg}, line {e.lineno})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise UserError(f"{pj}: not a VAE profile (format {doc.get('format') if isinstance(doc, dict) else None!r})")
    if doc.get("partial"):
        raise UserError(f"{pj}: a partial VAE profile (its command did not finish)")
    wl = doc.get("workloads")
    if not isinstance(wl, dict) or not all(isinstance(wl.get(w), dict) for w in WORKLOADS):
        raise UserError(f"{pj}: malformed VAE profile: 'workloads' must hold {list(WORKLOADS)}")
    bad = R._non_finite(wl)
    if bad:
        raise UserError(f"{pj}: malformed VAE profile: workloads.{bad} is not a finite number")
    return doc, pj.parent


def energy_rows(doc: dict) -> list[tuple[str, ...]]:
    """Per workload: Loihi 2 chip, host, chip + host, ANN VAE fp32 and int8, in µJ per image."""
    rows = []
    for w in WORKLOADS:
        e = doc["workloads"][w]["per_image_pj"]
        rows.append((PER[w], *(f"{e[k] / 1e6:.4f}" for k in ("loihi2_chip", "host_fp32", "loihi2_chip_plus_host",
                                                              "ann_vae_fp32", "ann_vae_int8"))))
    return rows


ENERGY_HEADER = ("µJ", "Loihi 2 chip", "host (45 nm fp32)", "chip + host", "ANN VAE fp32", "ANN VAE int8")


def host_rows(doc: dict) -> list[tuple[str, ...]]:
    rows = []
    for w in WORKLOADS:
        for part, h in doc["workloads"][w]["host"].items():
            c = h["counts"]
            e = h["energy_pj"]
            bits = c.get("bits_to_chip", 0) + c.get("bits_from_chip", 0)
            rows.append((PER[w], part, f"{c['macs']:,}", f"{c.get('random_bits', 0):,}",
                         f"{e.get('random_bits', 0):.1f}", f"{bits:,}", f"{e.get('transfer', 0) / 1e6:.4f}",
                         f"{e['fp32'] / 1e6:.4f}", f"{e['int8'] / 1e6:.4f}"))
    return rows


HOST_HEADER = ("workload", "host part", "MACs", "random bits", "random pJ", "host-chip bits", "transfer µJ",
               "total fp32 µJ", "total int8 µJ")


def fidelity_rows(fid: dict) -> list[tuple[str, str]]:
    def db(v: Optional[float]) -> str:
        return "inf (identical)" if v is None else f"{v:.2f} dB"

    rec, pri = fid["test_reconstruction"], fid["prior_samples"]
    rows = [("PSNR fixed vs float, test reconstructions (mean / min)",
             f"{db(rec['psnr_db']['mean'])} / {db(rec['psnr_db']['min'])} (n {rec['n']})"),
            ("PSNR fixed vs float, prior samples (mean / min)",
             f"{db(pri['psnr_db']['mean'])} / {db(pri['psnr_db']['min'])} (n {pri['n']})"),
            ("reconstruction MSE, test split (float / fixed)",
             f"{rec['recon_mse_float']:.5f} / {rec['recon_mse_fixed']:.5f}")]
    for name in ("classifier", "autoencoder"):
        f = fid["fid"].get(name)
        if f is not None:
            ch = "n/a" if f["relative_change"] is None else f"{100 * f['relative_change']:+.2f} %"
            rows.append((f"{name}-FID vs test, {fid['fid']['samples']} prior samples (float / fixed)",
                         f"{f['float']:.3f} / {f['fixed']:.3f} ({ch})"))
    enc = fid.get("encoder")
    if enc is not None:
        er = enc["reconstruction"]
        rows += [("encoder: latent-input spikes x, fixed vs float (agreement)",
                  f"{100 * enc['latent_input']['agreement']:.2f} % of {enc['latent_input']['values']:,}"),
                 ("encoder: posterior z from fixed vs float x (agreement)",
                  f"{100 * enc['posterior_z']['agreement']:.2f} %"),
                 ("PSNR, fixed encoder + decoder vs float chain, test (mean / min)",
                  f"{db(er['psnr_db']['mean'])} / {db(er['psnr_db']['min'])} (n {er['n']})"),
                 ("reconstruction MSE through the fixed encoder + decoder (float / fixed)",
                  f"{er['recon_mse_float']:.5f} / {er['recon_mse_fixed']:.5f}")]
    for what, lava, unit in (("decoder", fid.get("lava"), "latent trains"),
                             ("encoder", (enc or {}).get("lava"), "test images")):
        rows.append((f"Lava vs emulator ({what}), every on-chip layer", "not run" if lava is None else
                     f"{'identical' if lava['all_layers_identical'] else 'DIFFERENT'} on {len(lava['layers'])} "
                     f"layers, {lava['samples']} {unit}"))
    return rows


def report_md(doc: dict) -> str:
    fid = doc["fidelity"]
    lines = [f"# Spiking VAE on Loihi 2: {doc['deploy'].get('preset') or ''}", "",
             f"Backend `{doc['backend']}`, T = {doc['T']}, samples: "
             + ", ".join(f"{w} {doc['workloads'][w]['samples']}" for w in WORKLOADS) + ". Energies are estimates "
             "(counts × per-operation constants of the classifier's profiles).", "",
             "## Energy per image", "", R.md_table(ENERGY_HEADER, energy_rows(doc)), "",
             R.md_table(("quantity", "value", "unit / note"), summary_rows(doc)), "",
             "## What runs on the host", "", R.md_table(HOST_HEADER, host_rows(doc)), "",
             "## Fidelity (convert's fidelity.json)", "", R.md_table(("figure", "value"), fidelity_rows(fid)), "",
             "## Per workload", "",
             "Layer tables and plots (firing rate, SynOps, energy breakdown, raster): "
             "[generation](generation/report.md), [reconstruction: decoder](reconstruction/report.md), "
             f"[reconstruction: encoder]({ENCODER_DIR}/report.md); "
             "`energy_per_image.png` here.", "", "## Caveats", ""]
    lines += [f"- {c}" for c in doc.get("caveats", [])]
    return "\n".join(lines) + "\n"


def summary_csv(doc: dict) -> str:
    keys = ("loihi2_chip", "host_fp32", "loihi2_chip_plus_host", "ann_decoder_fp32", "ann_decoder_int8",
            "ann_vae_fp32", "ann_vae_int8")
    lines = ["workload,samples,spikes,synops,neuron_updates,cores," + ",".join(f"{k}_pj" for k in keys)]
    for w in WORKLOADS:
        x = doc["workloads"][w]
        c = x["chip"]
        lines.append(",".join([w, str(x["samples"]), f"{c['spikes']:.6g}", f"{c['synops']:.6g}",
                               f"{c['neuron_updates']:.6g}", str(c["cores"])]
                              + [f"{x['per_image_pj'][k]:.6g}" for k in keys]))
    return "\n".join(lines) + "\n"


def plot_energy_per_image(doc: dict, path: Path) -> None:
    plt = R._plt()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for i, w in enumerate(WORKLOADS):
        e = doc["workloads"][w]["per_image_pj"]
        ax.bar(i - 0.2, e["loihi2_chip"] / 1e6, 0.35, color="tab:blue", label="Loihi 2 chip" if i == 0 else None)
        ax.bar(i - 0.2, e["host_fp32"] / 1e6, 0.35, bottom=e["loihi2_chip"] / 1e6, color="tab:orange",
               label="host (45 nm fp32)" if i == 0 else None)
        ax.bar(i + 0.2, e["ann_vae_fp32"] / 1e6, 0.35, color="tab:gray", label="ANN VAE fp32" if i == 0 else None)
    ax.set_xticks(range(len(WORKLOADS)), [PER[w] for w in WORKLOADS])
    ax.set_ylabel("energy (µJ)")
    ax.set_title(f"{doc['deploy'].get('preset') or ''} · {doc['backend']}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_vae_report(profile: str | Path, out_dir: str | Path) -> dict:
    """Write the report of VAE profile ``profile`` into ``out_dir``; returns the top profile document."""
    doc, src = load_vae_profile(profile)
    out_dir = Path(out_dir)
    outputs.check_out_dir(out_dir, KIND, inputs=[src])
    outputs.clean_stale_temporaries(out_dir)
    with atomic.atomic_dir(out_dir) as tmp:
        for w in WORKLOADS:
            R.write_report(src / doc["workloads"][w]["dir"], tmp / w)
        if (src / ENCODER_DIR / "profile.json").is_file():
            R.write_report(src / ENCODER_DIR, tmp / ENCODER_DIR)
        (tmp / "report.md").write_text(report_md(doc))
        (tmp / "summary.csv").write_text(summary_csv(doc))
        (tmp / "tables.tex").write_text("\n\n".join([
            R.tex_table(ENERGY_HEADER, energy_rows(doc), "Energy per image of the spiking VAE (estimates)",
                        "tab:vae-energy", "l" + "r" * (len(ENERGY_HEADER) - 1)),
            R.tex_table(HOST_HEADER, host_rows(doc), "What runs on the host, per image", "tab:vae-host",
                        "ll" + "r" * (len(HOST_HEADER) - 2)),
            R.tex_table(("figure", "value"), fidelity_rows(doc["fidelity"]),
                        "Fidelity of the fixed-point decoder and encoder",
                        "tab:vae-fidelity", "lr")]) + "\n")
        shutil.copyfile(src / "profile.json", tmp / "profile.json")
        plot_energy_per_image(doc, tmp / "energy_per_image.png")
        outputs.write_marker(tmp, KIND)
    return doc
