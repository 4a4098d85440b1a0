"""The report: HTML is self-contained, summary first, verdict first in every row, cost checks apart, numbers to three
significant figures, non-empty figures; headless Chromium renders it with no sideways scrolling at 1280 and 390 px."""
import base64
import io
import re
import shutil
import subprocess

import numpy as np
import pytest
from engine_util import run_one
from matplotlib.image import imread

from archlab.experiments.judge.cost_checks import run_cost_checks
from archlab.experiments.report import browser
from archlab.experiments.report.html import figures, render_markdown, write_report
from archlab.experiments.spec import spec_from_dict
from archlab.experiments.suite.claims import select_specs
from archlab.experiments.sweep.store import Store

CHROMIUM = browser.chromium()


def toy(name, worse=1.5):
    return spec_from_dict({
        "name": name, "seed": "000", "quote": f"the {name} claim", "runner": "toy",
        "base": {"toy": {"quality": 1.0, "noise": 0.01}},
        "variants": {"base": {}, "ablated": {"toy.quality": worse}}, "seeds": list(range(10)), "budget": {"steps": 30},
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
    assert n_cost >= 2 and len(imgs) == 3 + 3 + n_cost  # effects + curves + finals per toy claim
    assert all(base64.b64decode(b)[:8] == b"\x89PNG\r\n\x1a\n" for b in imgs)
    md = paths["md"].read_text()
    assert "toy_win" in md and "**supported**" in md and "**contradicted**" in md
    assert [r.verdict for r in results[:2]] == ["supported", "contradicted"]
    assert render_markdown(results).count("![") == 6 + n_cost


def test_summary_first_verdict_first_checks_apart(report):
    results, paths = report
    html = paths["html"].read_text()
    assert html.index("id='summary'") < html.index("id='claims'") < html.index("id='verdicts'") \
        < html.index("id='checks'") < html.index("<section")
    summary = html[html.index("id='summary'"):html.index("</ul>")]
    assert "Claims:</b> 6 (2 trained, 4 computed by the cost model)" in summary and "Profile:</b> quick" in summary
    for table in ("claims", "verdicts", "checks"):
        body = html[html.index(f"id='{table}'"):]
        body = body[:body.index("</table>")]
        assert body.index("<th>verdict</th>") < body.index("<th>", body.index("<th>verdict</th>") + 1)
        first_cells = re.findall(r"<tr class='[a-z-]+'><td data-label='([^']+)'", body)
        assert first_cells and set(first_cells) == {"verdict"}
    n_checks = sum(len(r.checks) for r in results)
    assert html.count("class='check-row'") == n_checks and "stated by the seed" in html and "relative error" in html
    assert html.count("class='verdict-row'") == sum(len(r.comparisons) for r in results)


def test_numbers_have_three_significant_figures(report):
    from archlab.experiments.report.fmt import sig

    assert [sig(x) for x in (0.49372, 854196224, 5.3e6, 3.543e-05, 1253.4, 0.2111, 6, 0.05)] == \
        ["0.494", "854M", "5.30M", "3.54e-05", "1.25k", "0.211", "6", "0.0500"]
    results, paths = report
    text = paths["html"].read_text()
    cells = re.findall(r"<td data-label='(?:d \[95% CI\]|p|p \(Holm\)|stated by the seed|computed)'>([^<]*)</td>", text)
    numbers = [n for c in cells for n in re.findall(r"-?\d[\d.]*(?:e[-+]\d+)?", c.replace("M", "").replace("k", ""))]
    assert numbers and all(len(n.lstrip("-0.").replace(".", "").split("e")[0]) <= 3 for n in numbers), numbers


def test_figures_have_content_and_the_key_figure_comes_first(report):
    results, _ = report
    for r in results:
        figs = figures(r)
        assert figs and figs[0][0].endswith("_checks" if r.spec.kind == "cost" else "_effects")
        for name, png in figs:
            img = imread(io.BytesIO(png), format="png")
            ink = np.abs(img[..., :3] - 1.0).sum(axis=-1) > 0.1  # non-white pixels
            assert img.shape[0] > 100 and img.shape[1] > 200 and 0.01 < ink.mean() < 0.6, name


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (CI: apt-get install -y chromium)")
def test_report_renders_in_headless_chromium(report, tmp_path):
    results, paths = report
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'u'}"]
    url = paths["html"].resolve().as_uri()
    dom = subprocess.run(flags + ["--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    assert dom.count("class=\"verdict-row\"") == sum(len(r.comparisons) for r in results)
    assert dom.count("class=\"check-row\"") == sum(len(r.checks) for r in results)
    assert dom.count("class=\"claim-row\"") == len(results)
    assert "verdict rule" in dom.lower() and "p TOST (Holm)" in dom and "MDE 80%" in dom
    srcs = re.findall(r'<img[^>]*src="data:image/png;base64,([^"]+)"', dom)
    assert len(srcs) == sum(len(figures(r)) for r in results) and all(len(s) > 1000 for s in srcs)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (CI: apt-get install -y chromium)")
@pytest.mark.parametrize("width", [1280, 390])
def test_report_layout_fits_the_window(report, tmp_path, width):
    """No sideways scrolling (scrollWidth <= innerWidth), the verdict column on screen, a non-blank screenshot."""
    _, paths = report
    lay = browser.layout(paths["html"], width)
    assert lay["innerWidth"] == width and lay["scrollWidth"] <= width, lay
    v = lay["verdict"]
    assert v and v["width"] > 40 and 0 <= v["left"] and v["right"] <= width and v["text"].startswith("supported")
    shot = browser.screenshot(paths["html"], tmp_path / f"report_{width}.png", width, 1200)
    img = imread(shot)
    ink = np.abs(img[..., :3] - 1.0).sum(axis=-1) > 0.1
    assert img.shape[1] >= width and 0.02 < ink.mean() < 0.7
    shutil.copy(shot, paths["html"].parent / f"report_screenshot_{width}.png")  # kept for a person to look at


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


def test_calibrations_shown_only_for_the_families_that_ran(report):
    from types import SimpleNamespace

    from archlab.experiments.report.content import shown_calibrations

    results, _ = report
    ran = {f for r in results for f in r.spec.families}
    cal = lambda fam: SimpleNamespace(spec=SimpleNamespace(family=fam, name=f"cal_{fam}"))  # noqa: E731
    other = "never_ran"
    assert other not in ran
    shown = shown_calibrations(results, [cal(f) for f in sorted(ran)] + [cal(other)])
    assert [c.spec.family for c in shown] == sorted(ran)
    assert len(shown_calibrations([], [cal(other)])) == 1  # a calibration report shows every calibration


def test_tables_from_several_sweeps_merge_their_claims_and_refuse_a_claim_twice():
    import pytest

    from archlab.config import ConfigError
    from archlab.experiments.report.claims_table import merged_reports, verdict_counts

    a = {"command": "archlab claims --standard", "claims": [{"claim": "no_ffn", "verdict": "supported"}],
         "comparisons": [{"claim": "no_ffn"}]}
    b = {"command": "archlab claims --standard --only kv_cache_faster",
         "claims": [{"claim": "kv_cache_faster", "verdict": "contradicted: no effect ≥ 20% of the baseline"}],
         "comparisons": [{"claim": "kv_cache_faster"}]}
    both = merged_reports([a, b])
    assert both["command"] == "archlab claims --standard + archlab claims --standard --only kv_cache_faster"
    assert [c["claim"] for c in both["claims"]] == ["no_ffn", "kv_cache_faster"] and len(both["comparisons"]) == 2
    assert verdict_counts(both["claims"])["decided"] == 2
    assert merged_reports([a]) == a
    with pytest.raises(ConfigError, match="'no_ffn' is in verdicts files 1 and 2"):
        merged_reports([a, a])
