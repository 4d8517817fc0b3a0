"""profile.json from hand-built activity, and the report files: they exist and parse (CSV, JSON, LaTeX, PNG)."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from synthetic_activity import SyntheticBackend, small_network, synthetic_batches
from tcja_deploy.hardware import energy as E
from tcja_deploy.hardware.counters import COUNT_KEYS, count_network
from tcja_deploy.hardware.profiling import profile_batches
from tcja_deploy.hardware.report_writer import PLOTS, summary_rows, tex_escape, write_report

META = {"backend": "synthetic",
        "deploy": {"dir": "deploy/test_net", "hash": "sha256:0", "preset": "test_net", "dataset": "none", "T": 4},
        "versions": {"python": "3.10", "lava-nc": "0.10.0", "lava-dl": "0.6.0", "torch": "2.3.1", "numpy": "1",
                     "tcja_deploy": "0.1.0"},
        "samples": {"requested": 5, "split": "test", "first_index": 0, "selected": 5}}


@pytest.fixture(scope="module")
def profiled(tmp_path_factory):
    root = tmp_path_factory.mktemp("prof")
    doc = profile_batches(synthetic_batches(5, 2), SyntheticBackend(), root, root / "profile", E.resolve_profiles(),
                          META, total=5, progress=False)
    return root / "profile", doc


def test_profile_is_complete_and_its_statistics_match_direct_counts(profiled):
    prof_dir, doc = profiled
    assert json.loads((prof_dir / "profile.json").read_text()) == doc
    assert doc["partial"] is False and doc["stopped"] is None and doc["samples"]["done"] == 5
    # the same activity, counted directly: chunks of 2, 2, 1 with seeds 1, 2, 3
    totals = [count_network(small_network(N=n, T=4, seed=s)).total for n, s in ((2, 1), (2, 2), (1, 3))]
    synops = np.concatenate([t["synops"] for t in totals])
    st = doc["total"]["counts"]["synops"]
    assert st["mean"] == pytest.approx(synops.mean()) and st["std"] == pytest.approx(synops.std())
    assert st["min"] == synops.min() and st["max"] == synops.max()
    assert set(doc["total"]["counts"]) == set(COUNT_KEYS)
    assert doc["accuracy"] == {"correct": 2, "labelled": 5, "value": pytest.approx(0.4)}
    assert [l["name"] for l in doc["layers"]] == ["seg0.conv0", "seg0.pool0", "gate0", "seg1.fc0"]
    sc = doc["energy"]["scenarios"]
    assert list(sc) == list(E.SCENARIOS)
    assert all(s["status"] == "estimate" for s in sc.values())
    assert sc["snn_chip"]["profile"] == "loihi-davies2018" and sc["ann_cmos"]["profile"] == "cmos45nm-horowitz2014"
    layer_sum = sum(l["energy_pj"]["snn_chip"]["total"]["mean"] for l in doc["layers"])
    assert sc["snn_chip"]["total"]["mean"] == pytest.approx(layer_sum)
    assert doc["energy"]["measured"] is None
    assert doc["latency"]["window_gate_steps"] == 4
    with np.load(prof_dir / "raster.npz") as z:
        assert [str(n) for n in z["names"]] == ["input", "seg0.conv0", "seg0.pool0", "gate0", "seg1.fc0"]
        assert z["layer_1"].shape == (4, 48)


def test_interrupt_leaves_a_partial_profile(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        profile_batches(synthetic_batches(6, 2), SyntheticBackend(interrupt_after=2), tmp_path, tmp_path / "p",
                        E.resolve_profiles(), META, total=6, progress=False)
    doc = json.loads((tmp_path / "p" / "profile.json").read_text())
    assert doc["partial"] is True and doc["samples"]["done"] == 4 and "interrupted" in doc["stopped"]


def _check_latex(text: str) -> None:
    """Balanced \\begin/\\end, and every tabular row has (columns − 1) unescaped & separators."""
    stack = []
    for kind, env in re.findall(r"\\(begin|end)\{(\w+)\}", text):
        if kind == "begin":
            stack.append(env)
        else:
            assert stack and stack.pop() == env, f"unbalanced \\end{{{env}}}"
    assert not stack, f"unclosed environments {stack}"
    for align, body in re.findall(r"\\begin\{tabular\}\{([lcr]+)\}(.*?)\\end\{tabular\}", text, re.S):
        rows = [ln for ln in body.strip().splitlines() if ln.rstrip().endswith(r"\\")]
        assert rows
        for row in rows:
            assert len(re.findall(r"(?<!\\)&", row)) == len(align) - 1, row
    assert not re.search(r"(?<!\\)_", text.split("\n", 1)[1]), "unescaped underscore"


def test_report_files_exist_and_parse(profiled, tmp_path):
    prof_dir, doc = profiled
    out = tmp_path / "report"
    write_report(prof_dir, out)
    for name in ("report.md", "tables.tex", "layers.csv", "profile.json", *PLOTS):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    for name in PLOTS:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "profile.json").read_text()) == doc
    rows = list(csv.DictReader((out / "layers.csv").open()))
    assert [r["name"] for r in rows] == [l["name"] for l in doc["layers"]]
    assert float(rows[0]["synops_mean"]) == pytest.approx(doc["layers"][0]["counts"]["synops"]["mean"])
    assert all(len(r) == len(rows[0]) for r in rows)
    tex = (out / "tables.tex").read_text()
    _check_latex(tex)
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex and r"seg0.conv0" in tex
    md = (out / "report.md").read_text()
    for needle in ("estimate", "loihi-davies2018", "cmos45nm-horowitz2014", "Davies", "Horowitz", "2409.08290",
                   "No per-operation energies are published for Loihi 2", "accuracy", "## Caveats"):
        assert needle in md, needle


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
def test_tables_compile_with_pdflatex(profiled, tmp_path):
    prof_dir, _ = profiled
    write_report(prof_dir, tmp_path / "r")
    (tmp_path / "doc.tex").write_text("\\documentclass{article}\\usepackage{booktabs}\\usepackage[utf8]{inputenc}"
                                      "\\begin{document}\\input{r/tables.tex}\\end{document}\n")
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout[-2000:]


def test_summary_rows_say_estimate_and_profile_for_every_energy(profiled):
    _, doc = profiled
    energy_rows = [r for r in summary_rows(doc) if r[0].startswith("energy:")]
    assert len(energy_rows) == len(E.SCENARIOS)
    assert all("estimate" in r[2] and "profile" in r[2] for r in energy_rows)


def test_tex_escape():
    assert tex_escape("seg0_conv & 5% #1 ±") == r"seg0\_conv \& 5\% \#1 $\pm$"
