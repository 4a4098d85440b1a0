"""The report: HTML is self-contained, and headless Chromium renders the verdict table and every figure."""
import base64
import re
import shutil
import subprocess

import pytest
from engine_util import run_one

from archlab.experiments.judge.cost_checks import run_cost_checks
from archlab.experiments.report.html import figures, render_markdown, write_report
from archlab.experiments.spec import spec_from_dict
from archlab.experiments.suite.claims import select_specs
from archlab.experiments.sweep.store import Store

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def toy(name, worse=1.5):
    return spec_from_dict({
        "name": name, "seed": "000", "quote": f"the {name} claim", "runner": "toy",
        "base": {"toy": {"quality": 1.0, "noise": 0.01}},
        "variants": {"base": {}, "ablated": {"toy.quality": worse}}, "seeds": list(range(6)), "budget": {"steps": 30},
        "compare": [{"variant": "ablated", "expect": "worse"}], "rule": {"min_effect": 0.05}})


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    with Store(out / "r.sqlite") as st:
        results = [run_one(toy("toy_win"), st, out_dir=out, inline=True, log=None),
                   run_one(toy("toy_loss", worse=0.5), st, out_dir=out, inline=True, log=None)]
        results += [run_cost_checks(s, st) for s in select_specs(["cost"])]
    paths = write_report(results, out, title="test report", command="pytest")
    return results, paths


def test_report_files_are_self_contained(report):
    results, paths = report
    html = paths["html"].read_text()
    assert "src='http" not in html and 'src="http' not in html  # nothing fetched
    imgs = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", html)
    n_cost = sum(len(figures(r)) for r in results[2:])  # one figure per cost claim with numeric checks
    assert n_cost >= 2 and len(imgs) == 2 + 2 + n_cost  # curves + bars per toy claim
    assert all(base64.b64decode(b)[:8] == b"\x89PNG\r\n\x1a\n" for b in imgs)
    md = paths["md"].read_text()
    assert "| toy_win |" in md and "**supported**" in md and "**contradicted**" in md
    assert [r.verdict for r in results[:2]] == ["supported", "contradicted"]
    assert render_markdown(results).count("![") == 4 + n_cost


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (CI: apt-get install -y chromium)")
def test_report_renders_in_headless_chromium(report, tmp_path):
    results, paths = report
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'u'}"]
    url = paths["html"].resolve().as_uri()
    dom = subprocess.run(flags + ["--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    n_rows = sum(len(r.comparisons) + len(r.checks) for r in results)
    assert dom.count("class=\"verdict-row\"") == n_rows
    assert dom.count("class=\"claim-row\"") == len(results)
    assert "verdict rule" in dom.lower() and "p TOST (Holm)" in dom and "MDE 80%" in dom
    srcs = re.findall(r'<img[^>]*src="data:image/png;base64,([^"]+)"', dom)
    assert len(srcs) == sum(len(figures(r)) for r in results) and all(len(s) > 1000 for s in srcs)
    shot = tmp_path / "report.png"
    subprocess.run(flags + [f"--screenshot={shot}", "--window-size=1200,1600", url], capture_output=True,
                   timeout=120)
    assert shot.exists() and shot.stat().st_size > 10_000
    shutil.copy(shot, paths["html"].parent / "report_screenshot.png")  # kept for a person to look at


def test_verdicts_table_counts_only_supported_and_contradicted_as_decided():
    from archlab.experiments.report.claims_table import verdict_counts, verdicts_table

    claims = [{"claim": "no_ffn", "verdict": "supported"}, {"claim": "no_residual", "verdict": "contradicted"},
              {"claim": "single_head", "verdict": "inconclusive"}, {"claim": "mamba_relu", "verdict": "no verdict"},
              {"claim": "cnn_order", "verdict": "uncalibrated (supported)"}]
    n = verdict_counts(claims)
    assert (n["decided"], n["supported"], n["contradicted"], n["inconclusive"], n["no verdict"],
            n["uncalibrated"]) == (2, 1, 1, 1, 1, 1)
    rows = [{"claim": "no_ffn", "comparison": "no_ffn worse than base", "baseline": "base: 2.1",
             "variant": "no_ffn: 2.3",
             "diff": "0.2 [0.1, 0.3]", "p": "0.01", "verdict": "supported"}]
    text = verdicts_table({"command": "archlab claims --standard", "claims": claims, "comparisons": rows})
    assert "**2 of 5 claims decided** (40%: 1 supported, 1 contradicted)" in text and "1 uncalibrated" in text
    assert "| no_ffn | char-level Shakespeare" in text and "d 0.2 [0.1, 0.3] → supported" in text


def test_readme_table_has_one_row_per_claim_with_its_seed_and_task():
    from archlab.experiments.report.claims_table import readme_table

    claims = [{"claim": "no_ffn", "verdict": "supported"}, {"claim": "heads_compute", "verdict": "contradicted"}]
    text = readme_table({"command": "archlab claims --standard", "claims": claims, "comparisons": []})
    assert text.startswith("`archlab claims --standard`: **2 of 2 claims decided**")
    assert "| no_ffn | 000 | char-level Shakespeare" in text and "| heads_compute | 002 | computation" in text
