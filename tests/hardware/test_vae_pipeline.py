"""The spiking VAE's convert → profile → report on a tiny VAE run: the three commands end to end, the deploy
directory's files checked on load, the kinds kept apart, the per-image counts on hand-computed cases."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from tcja_deploy import convert as convert_cli
from tcja_deploy import profile as profile_cli
from tcja_deploy import report as report_cli
from tcja_deploy.conversion import vae_deploy as VD
from tcja_deploy.conversion.deploy_dir import read_deploy
from tcja_deploy.errors import UserError
from tcja_deploy.hardware import energy as E
from tcja_deploy.hardware import vae_host as H
from tcja_deploy.hardware.activity import LayerActivity
from tcja_deploy.hardware.ann_baseline import ann_layer_counts
from tcja_deploy.hardware.counters import conv_transpose_fanout_map
from tcja_deploy.models.vae import SpikingVAE, VAEConfig
from tcja_deploy.training import checkpoint
from tcja_deploy.training.vae_run import save_vae_config
from vae_tiny import make_every_layer_spike

CFG = VAEConfig(preset="vae_tiny", dataset="digits", in_channels=1, image_size=32, hidden=(2, 2, 3, 3), latent_dim=4,
                k=2, T=3, kernel_tla=2, kernel_cla=2, tcja_blocks=("dec0",))


def tiny_run(path):
    """A finished VAE run of random weights whose tdBN statistics make every layer spike (no training)."""
    torch.manual_seed(0)
    model = make_every_layer_spike(SpikingVAE(CFG))
    path.mkdir(parents=True)
    save_vae_config(path, CFG, {"preset": "vae_tiny", "epochs": 0}, {})
    checkpoint.save_state_dict(path / checkpoint.MODEL_FILE, model.state_dict())
    (path / checkpoint.METRICS_FILE).write_text("{}\n")
    return path


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """The three commands on the tiny run (Lava check of 6 requested trains under a budget that ends after the
    first chunk of 4); the feature nets train for one epoch (their quality is not under test)."""
    pytest.importorskip("lava")
    from tcja_deploy.generation import feature_nets

    mp = pytest.MonkeyPatch()
    mp.setattr(feature_nets, "default_epochs", lambda *args, **kwargs: 1)
    root = tmp_path_factory.mktemp("vae")
    run = tiny_run(root / "run")
    try:
        assert convert_cli.main(["--target", "loihi2", "--run", str(run), "--out", str(root / "deploy"),
                                 "--lava-samples", "6", "--lava-budget", "0.001"]) == 0
    finally:
        mp.undo()
    assert profile_cli.main(["--deploy", str(root / "deploy"), "--backend", "emulator", "--out",
                             str(root / "profile"), "--no-progress"]) == 0
    assert report_cli.main(["--profile", str(root / "profile"), "--out", str(root / "report")]) == 0
    return root


def one_line_error(capsys, *needles):
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for n in needles:
        assert n in err, err


def test_convert_writes_a_complete_vae_deploy_directory(pipeline):
    d = pipeline / "deploy"
    assert json.loads((d / ".tcja_deploy").read_text())["kind"] == "vae-deploy"
    deploy = VD.read_vae_deploy(d)
    assert sorted(deploy.doc["files"]) == sorted(p.name for p in d.iterdir() if not p.name.startswith("."))
    fid = json.loads((d / "fidelity.json").read_text())
    assert fid["test_reconstruction"]["n"] == fid["prior_samples"]["n"] == 359 == fid["fid"]["samples"]
    for name in ("classifier", "autoencoder"):
        f = fid["fid"][name]
        assert f["float"] > 0 and f["fixed"] > 0
        assert f["relative_change"] == pytest.approx((f["fixed"] - f["float"]) / f["float"])
    rec = fid["test_reconstruction"]
    assert rec["recon_mse_change"] == pytest.approx((rec["recon_mse_fixed"] - rec["recon_mse_float"])
                                                    / rec["recon_mse_float"])
    # the budget ran out in the first Lava chunk: its 4 trains are checked, bit-exact on every on-chip layer
    lava = fid["lava"]
    assert lava["requested"] == 6 and lava["samples"] == 4 and lava["all_layers_identical"]
    assert fid["targets"]["lava_bit_exact"] is True
    assert sum(v["events"] for v in lava["layers"].values()) > 0  # the layers are not silent
    # the synapse file holds each layer's Sparse matrix, the graph's weights exactly
    mats = VD.load_synapses(d / "synapses.npz", deploy.graph)
    assert list(mats) == ["from_latent", "dec0", "dec1", "dec2", "dec3"]
    assert [e["nnz"] for e in deploy.doc["synapses"]["layers"]] == [m.nnz for m in mats.values()]
    lat = VD.load_latents(d / "latents.npz", CFG.T, CFG.latent_dim)
    assert lat["prior"].shape == (3, 359, 4) and lat["posterior"].shape == (3, 359, 4) and lat["prior"].any()
    assert deploy.doc["placement"]["output"] == "host" and deploy.doc["placement"]["dec0.tcja_gate"] == "chip"
    assert np.array_equal(lat["images"].shape, (359, 1, 32, 32)) and lat["images"].min() < 0 < lat["images"].max()
    # the encoder: its graph and Sparse matrices (a conv's is its conv_matrix), checked like the decoder's on Lava
    enc_doc, enc = VD.read_encoder(deploy)
    assert enc_doc["kind"] == "vae-encoder" and enc.nodes["input"].shape == (2, 32, 32)
    enc_mats = VD.load_synapses(d / "encoder_synapses.npz", enc)
    assert list(enc_mats) == ["enc0", "enc1", "enc2", "enc3", "to_latent"]
    e = fid["encoder"]
    assert e["float_vs_model"]["agreement"] == 1.0 and 0.5 < e["latent_input"]["agreement"] <= 1
    assert e["reconstruction"]["n"] == 359 and e["lava"]["all_layers_identical"]
    # the budget was spent by the decoder's first chunk: the encoder still checks one chunk
    assert e["lava"]["samples"] == 4 and sum(v["events"] for v in e["lava"]["layers"].values()) > 0


def test_profile_counts_each_workload_per_image(pipeline):
    top = json.loads((pipeline / "profile" / "profile.json").read_text())
    assert top["format"] == "tcja_deploy.vae_profile/1" and not top["partial"]
    for name in ("generation", "reconstruction"):
        sub = json.loads((pipeline / "profile" / name / "profile.json").read_text())
        w = top["workloads"][name]
        assert w["samples"] == sub["samples"]["done"] == 359
        assert w["chip"]["synops"] >= sub["total"]["counts"]["synops"]["mean"] > 0
        assert [l["kind"] for l in sub["layers"]][:3] == ["dense", "conv_transpose", "gate"]
        e = w["per_image_pj"]
        if name == "reconstruction":  # the chip is the encoder's sub-profile plus the decoder's
            enc = json.loads((pipeline / "profile" / "reconstruction_encoder" / "profile.json").read_text())
            assert [l["kind"] for l in enc["layers"]] == ["conv"] * 4 + ["dense"]
            assert w["chip"]["synops"] == pytest.approx(sub["total"]["counts"]["synops"]["mean"]
                                                        + enc["total"]["counts"]["synops"]["mean"])
            assert w["chip_parts"]["encoder"]["synops"] > 0
            sub = {"energy": {"scenarios": {"snn_chip": {"total": {"mean": (
                sub["energy"]["scenarios"]["snn_chip"]["total"]["mean"]
                + enc["energy"]["scenarios"]["snn_chip"]["total"]["mean"])}}}}}
        host = sum(h["energy_pj"]["fp32"] for h in w["host"].values())
        assert e["host_fp32"] == pytest.approx(host) and e["loihi2_chip_plus_host"] == pytest.approx(
            e["loihi2_chip"] + host)
        assert e["loihi2_chip"] == pytest.approx(sub["energy"]["scenarios"]["snn_chip"]["total"]["mean"])
    assert set(top["workloads"]["generation"]["host"]) == {"prior", "readout"}
    assert set(top["workloads"]["reconstruction"]["host"]) == {"image_input", "posterior", "readout"}
    for part in top["workloads"]["reconstruction"]["host"].values():  # random bits and transfer are charged
        assert part["energy_pj"]["transfer"] > 0
    assert top["fidelity"] == json.loads((pipeline / "deploy" / "fidelity.json").read_text())


def test_report_holds_energy_per_image_and_fidelity(pipeline):
    r = pipeline / "report"
    md = (r / "report.md").read_text()
    assert "per generated image" in md and "classifier-FID" in md and "PSNR fixed vs float" in md
    for f in ("tables.tex", "summary.csv", "profile.json", "energy_per_image.png", "generation/report.md",
              "reconstruction/synops.png", "generation/raster.png"):
        assert (r / f).is_file(), f
    csv = (r / "summary.csv").read_text().splitlines()
    top = json.loads((pipeline / "profile" / "profile.json").read_text())
    assert csv[1].startswith("generation,359,")
    assert float(csv[1].split(",")[6]) == pytest.approx(top["workloads"]["generation"]["per_image_pj"]["loihi2_chip"],
                                                        rel=1e-5)


def test_lava_backend_counts_what_the_emulator_counts(pipeline, tmp_path):
    for backend in ("emulator", "lava-sim"):
        assert profile_cli.main(["--deploy", str(pipeline / "deploy"), "--backend", backend, "--samples", "1",
                                 "--out", str(tmp_path / backend), "--no-progress"]) == 0
    for name in ("generation", "reconstruction", "reconstruction_encoder"):
        a, b = (json.loads((tmp_path / k / name / "profile.json").read_text()) for k in ("emulator", "lava-sim"))
        for la, lb in zip(a["layers"], b["layers"]):
            assert la["counts"] == lb["counts"], la["name"]


def test_the_kinds_are_kept_apart(pipeline, tiny_deploy_dir, tmp_path, capsys):
    with pytest.raises(UserError, match="spiking-VAE deploy directory"):
        read_deploy(pipeline / "deploy")
    with pytest.raises(UserError, match="not a vae-deploy directory"):
        VD.read_vae_deploy(tiny_deploy_dir)
    assert profile_cli.main(["--deploy", str(pipeline / "deploy"), "--backend", "loihi2", "--out",
                             str(tmp_path / "p")]) == 2
    one_line_error(capsys, "emulator or lava-sim")
    # the classifier's report reader on a VAE profile, a classifier convert over a VAE deploy directory
    from tcja_deploy.hardware.report_writer import load_profile

    with pytest.raises(UserError, match="not a tcja_deploy profile"):
        load_profile(pipeline / "profile")
    from tiny import tiny_run as tiny_classifier_run

    cls = tiny_classifier_run(tmp_path / "cls")
    assert convert_cli.main(["--run", str(cls), "--out", str(pipeline / "deploy")]) == 2
    one_line_error(capsys, "refusing to replace a vae-deploy directory")
    assert convert_cli.main(["--target", "onnx", "--run", str(pipeline / "run"), "--out", str(tmp_path / "d")]) == 2
    one_line_error(capsys, "loihi2 only")
    assert not (tmp_path / "d").exists() and not (tmp_path / "p").exists()


def _tampered(pipeline, tmp_path, name, edit):
    d = tmp_path / "deploy"
    shutil.copytree(pipeline / "deploy", d)
    with np.load(d / name) as z:
        arrays = {k: z[k] for k in z.files}
    edit(arrays)
    np.savez(d / name, **arrays)
    return d


@pytest.mark.parametrize("name,edit,message", [
    ("synapses.npz", lambda a: a["dec1.data"].__setitem__(0, a["dec1.data"][0] + 2), "entries differ"),
    ("synapses.npz", lambda a: a.pop("dec0.indptr"), "lacks ['dec0.indptr']"),
    ("synapses.npz", lambda a: a.__setitem__("dec2.shape", np.array([3, 3])), "matrix shape [3, 3]"),
    ("synapses.npz", lambda a: a.__setitem__("dec2.data", a["dec2.data"].astype(np.float32)), "integer arrays"),
    ("latents.npz", lambda a: a.__setitem__("prior", a["prior"] * 2), "values other than 0 and 1"),
    ("latents.npz", lambda a: a.__setitem__("posterior", a["posterior"][:2]), "must be uint8 [T=3, N, L=4]"),
    ("latents.npz", lambda a: a.__setitem__("images", a["images"][:, :, :8]), "'images' must be float32"),
    ("encoder_synapses.npz", lambda a: a["enc1.data"].__setitem__(0, a["enc1.data"][0] + 2), "entries differ"),
])
def test_bad_deploy_files_are_one_line(pipeline, tmp_path, capsys, name, edit, message):
    d = _tampered(pipeline, tmp_path, name, edit)
    assert profile_cli.main(["--deploy", str(d), "--backend", "lava-sim", "--samples", "1", "--out",
                             str(tmp_path / "p"), "--no-progress"]) == 2
    one_line_error(capsys, name, message)


def test_truncated_and_missing_files_are_one_line(pipeline, tmp_path, capsys):
    d = tmp_path / "deploy"
    shutil.copytree(pipeline / "deploy", d)
    (d / "synapses.npz").write_bytes((d / "synapses.npz").read_bytes()[:100])
    assert profile_cli.main(["--deploy", str(d), "--backend", "lava-sim", "--out", str(tmp_path / "p")]) == 2
    one_line_error(capsys, "synapses.npz: not an npz file")
    shutil.copyfile(pipeline / "deploy" / "synapses.npz", d / "synapses.npz")
    (d / "fidelity.json").write_text("{")
    assert profile_cli.main(["--deploy", str(d), "--out", str(tmp_path / "p")]) == 2
    one_line_error(capsys, "fidelity.json: not readable JSON")
    good = (d / "graph.json").read_text()
    doc = json.loads(good)
    del doc["host"]["prior"]["counts_per_generated_image"]["macs"]
    (d / "graph.json").write_text(json.dumps(doc))
    assert profile_cli.main(["--deploy", str(d), "--out", str(tmp_path / "p")]) == 2
    one_line_error(capsys, "host.prior.counts_per_generated_image must hold the integer counts")
    (d / "graph.json").write_text(good)
    (d / "latents.npz").unlink()
    assert profile_cli.main(["--deploy", str(d), "--out", str(tmp_path / "p")]) == 2
    one_line_error(capsys, "latents.npz", "missing")


# ------------------------------------------------------------------------------------- hand-computed counts
def test_conv_transpose_fanout_and_ann_macs_by_hand():
    # 1 → 1 channel, 2×2 input, k 3, s 2, p 1, op 1 → 4×4 output. Input (h, w) reaches output row i = 2h − 1 + a,
    # a ∈ {0, 1, 2}: h = 0 → rows {−1, 0, 1} ∩ [0, 4) = 2 rows, h = 1 → rows {1, 2, 3} = 3 rows; columns alike.
    w = np.ones((1, 1, 3, 3), dtype=np.float32)
    fan = conv_transpose_fanout_map(w, (1, 2, 2), (1, 4, 4), stride=2, padding=1)
    assert fan.tolist() == [[[4, 6], [6, 9]]]
    w[0, 0, 0, :] = 0  # tap row a = 0 gone: h = 0 reaches rows {0, 1}, h = 1 rows {2, 3}; columns as before
    assert conv_transpose_fanout_map(w, (1, 2, 2), (1, 4, 4), 2, 1).tolist() == [[[4, 6], [4, 6]]]
    layer = LayerActivity(name="t", kind="conv_transpose", in_shape=(1, 2, 2), out_shape=(1, 4, 4),
                          input_spikes=np.zeros((3, 1, 1, 2, 2)), output_spikes=np.zeros((3, 1, 1, 4, 4)), weight=w,
                          stride=2, padding=1)
    c = ann_layer_counts(layer)
    assert c["macs"] == 4 * 9 and c["macs_no_padding"] == 4 + 6 + 6 + 9 and c["macs_nonzero"] == 20
    assert c["activations"] == 16 and c["macs_x_steps"] == 3 * 36


def test_host_counts_by_hand():
    # L 2, k 3, T 4: widths 2 → 4 → 8 → 6; Σ a·b = 8 + 32 + 48 = 88, Σ b = 18, Σ a = 14
    c = H.prior_counts(2, 3, 4)
    assert (c["macs"], c["activations"], c["weights"], c["inputs"], c["outputs"]) == (352, 72, 88, 56, 72)
    assert c["random_draws"] == 8 and c["random_bits"] == 16 and c["bits_to_chip"] == 8
    r = H.readout_counts((2, 4, 4), (1, 4, 4), 3, 5, payload_bits=8)  # Σ_t over 5 steps of 32 values, 32 × 9 taps
    assert r["macs"] == 160 + 288 and r["activations"] == 16 and r["weights"] == 18
    assert r["bits_from_chip"] == 5 * 32 * 8  # every step's 32 payloads of 8 bits
    # posterior: 2L → 2L → 4L → k·L = 4 → 4 → 8 → 6 per step, T 4: Σ a·b = 16 + 32 + 48 = 96
    p = H.posterior_counts(2, 3, 4)
    assert p["macs"] == 4 * 96 and p["bits_to_chip"] == p["bits_from_chip"] == 8 and p["random_bits"] == 16
    i = H.image_input_counts((1, 4, 4), 6, 3)
    assert i["bits_to_chip"] == 3 * 16 * 7 and i["macs"] == 0
    cmos = E.get_profile(E.DEFAULTS["cmos"])
    assert H.host_energy({"macs": 1}, cmos)["fp32"] == pytest.approx(cmos.get("mac_pj"))
    assert H.host_energy({"activations": 2}, cmos)["fp32"] == pytest.approx(2 * cmos.get("ac_pj"))


def test_random_bits_and_transfer_are_charged_from_the_primary_constants():
    cmos = E.get_profile(E.DEFAULTS["cmos"])
    e = H.host_energy({"random_bits": 32, "bits_to_chip": 64, "bits_from_chip": 64}, cmos)
    assert e["random_bits"] == pytest.approx(6 * cmos.get("int32_add_pj"))  # one xorshift32 step: 3 shifts, 3 XORs
    assert e["transfer"] == pytest.approx(2 * cmos.get("dram_access_64b_pj"))  # two 64-bit transfers
    assert e["fp32"] == pytest.approx(e["random_bits"] + e["transfer"]) == pytest.approx(e["int8"])
    d = E.derived_constants(cmos)
    assert "int32_add_pj" in d["prng_bit_pj"].derived and "dram_access_64b_pj" in d["offchip_bit_pj"].derived
