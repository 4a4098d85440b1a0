"""A spec whose metric its runs never report is stopped after its first finished run, with one line naming the
metric and the metrics the run does report — not trained to the end for "no verdict: fewer than 6 paired seeds"."""
from engine_util import run_all, run_one

from archlab.experiments.engine import metric_check
from archlab.experiments.spec import resolve, spec_from_dict
from archlab.experiments.sweep.store import Store


def toy(name="bogus", metric="val_bogus", **extra):
    """The toy runner (final metrics: val_loss, train_loss), 2 variants × 6 seeds."""
    return spec_from_dict({
        "name": name, "seed": "000", "quote": "q", "runner": "toy", "base": {"toy": {"quality": 1.0, "noise": 0.01}},
        "variants": {"base": {}, "worse": {"toy.quality": 1.5}}, "seeds": list(range(6)), "budget": {"steps": 20},
        "metric": metric, "compare": [{"variant": "worse"}], **extra})


LINE = ("bogus: metric 'val_bogus' is not among the final metrics its runs report (base seed=0 reports train_loss, "
        "val_loss); fix the spec")


def test_unreported_metric_stops_the_spec_after_its_first_run(tmp_path):
    lines = []
    with Store(tmp_path / "s.sqlite") as st:
        result = run_one(toy(), st, out_dir=tmp_path, log=lines.append)
        assert result.sweep.ran == 1 and result.sweep.refused == {"bogus": LINE}  # one run, not twelve
        assert f"{LINE}; 11 queued run(s) of it not started" in lines
        assert [r["status"] for r in st.runs("bogus")].count("done") == 1
        assert result.verdict == "no verdict"
        assert [c.verdict.label for c in result.comparisons] == ["no verdict: " + LINE.split(": ", 1)[1]]
        # the same command again (a resume) refuses before starting any run
        lines.clear()
        again = run_one(toy(), st, out_dir=tmp_path, log=lines.append)
        assert again.sweep.ran == 0 and f"{LINE}; none of its runs started" in lines
        assert again.verdict == "no verdict" and [r["status"] for r in st.runs("bogus")].count("done") == 1


def test_comparison_and_gate_metrics_are_checked_too():
    spec = toy(metric="val_loss", compare=[{"variant": "worse", "metric": "val_acc"}],
               rule={"gate": {"metric": "val_ppl", "chance": 5.0, "goal": "min"}})
    plan = resolve(spec, "quick")[0]
    assert metric_check([spec])(plan, {"val_loss": 1.0, "train_loss": 1.0}) == (
        "bogus: compare[0].metric 'val_acc', rule.gate.metric 'val_ppl' are not among the final metrics its runs "
        "report (base seed=0 reports train_loss, val_loss); fix the spec")
    assert metric_check([spec])(plan, {"val_loss": 1.0, "val_acc": 0.5, "val_ppl": 3.0}) == ""


def test_other_specs_of_the_sweep_run_in_full(tmp_path):
    """A good spec in the same sweep is untouched, even where it shares its runs with the refused one."""
    with Store(tmp_path / "s.sqlite") as st:
        bad, good, other = run_all([toy(), toy("good", "val_loss"), toy("other", "val_loss", budget={"steps": 30})],
                                   st, out_dir=tmp_path, log=None)
    assert bad.verdict == "no verdict" and bad.comparisons[0].verdict.label.startswith("no verdict: metric 'val_bogus'")
    assert good.verdict == other.verdict == "supported" and good.comparisons[0].verdict.n == 6
    assert bad.sweep.ran == 24 and set(bad.sweep.refused) == {"bogus"}  # good's 12 (shared with bad) + other's 12
