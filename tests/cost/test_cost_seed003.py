"""Seed 003's worked examples, recomputed from layers: the lab catches the seed's slips instead of copying them."""
from __future__ import annotations

import pytest

from archlab.cost import model_cost
from archlab.cost.analytic import conv2d_macs, depthwise_separable_ratio
from archlab.cost.seed003 import direct_formulas, examples, report


@pytest.fixture(scope="module")
def ex():
    return {e.key: e for e in examples()}


def test_naive_inception_is_854m(ex):
    e = ex["naive_inception"]
    assert e.lab_value == 854_196_224 == 28 * 28 * 256 * (128 + 192 * 9 + 96 * 25)
    assert e.verdict == "agrees"


def test_bottleneck_inception_sums_to_271m_not_358m(ex):
    e = ex["bottleneck_inception"]
    assert e.lab_value == 271_351_808
    assert round(e.lab_value / 1e6, 1) == 271.4
    assert e.verdict == "slip"
    # the seed's 358M is exactly the true sum with the 3×3/192 layer counted twice
    assert e.extra["double_counted_3x3"] == 28 * 28 * 192 * 3 * 3 * 64 == 86_704_128
    assert e.extra["seed_sum_reproduced"] == 358_055_936
    assert round(e.extra["seed_sum_reproduced"] / 1e6) == 358
    assert "twice" in e.explanation and "271.4M" in e.explanation


def test_five_by_five_example(ex):
    assert ex["five_by_five"].lab_value == 112_896_000  # 112.9M
    assert ex["five_by_five_bottleneck"].lab_value == 1_505_280 + 3_763_200 == 5_268_480  # 5.3M
    assert ex["five_by_five"].verdict == ex["five_by_five_bottleneck"].verdict == "agrees"


def test_depthwise_separable_ratio_is_0211_not_022(ex):
    e = ex["depthwise_separable"]
    assert e.lab_value == pytest.approx(1 / 10 + 1 / 9, abs=1e-12)
    assert e.lab_value == pytest.approx(depthwise_separable_ratio(10, 3))
    assert round(e.lab_value, 3) == 0.211 and round(e.lab_value, 2) == 0.21 != 0.22
    assert e.verdict == "slip"
    assert e.extra["standard"] == 416 * 416 * 50 * 9 * 10


def test_walk_agrees_with_the_closed_form(ex):
    for key, value in direct_formulas().items():
        assert ex[key].lab_value == value, key


def test_takeaway_question_answer_c(ex):
    assert ex["takeaway_separable"].lab_value == 32 * 32 * 16 * 9 + 16 * 8 * 32 * 32


def test_cnn_engineers_modules_give_the_same_numbers():
    cnn = pytest.importorskip("archlab.models.cnn")
    for naive, expect in ((True, 854_196_224), (False, 271_351_808)):
        mc = model_cost(cnn.inception_config(naive=naive))
        convs = sum(r.macs for r in mc.rows if r.kind.startswith("conv"))
        assert convs == expect
    mc = model_cost(cnn.separable_config())
    convs = [r.macs for r in mc.rows if r.kind.startswith("conv")]
    assert convs == [416 * 416 * 50 * 9, 416 * 416 * 50 * 10]
    assert sum(convs) / conv2d_macs(1, 50, 10, 3, 3, 416, 416) == pytest.approx(1 / 10 + 1 / 9)


def test_googlenet_difference_is_explained(ex):
    if "googlenet" not in ex:
        pytest.skip("googlenet preset not registered")
    e = ex["googlenet"]
    assert 1.50e9 <= e.lab_value <= 1.59e9  # paper's layer table; seed says 1.4G
    assert e.extra["conv1"] == 112 * 112 * 64 * 7 * 7 * 3
    assert 1.45e9 <= e.extra["macs_tv"] <= 1.55e9  # torchvision variant ≈ 1.5G
    assert "1.43G" in e.explanation


def test_report_mentions_every_slip():
    text = report()
    assert "854,196,224" in text and "271,351,808" in text and "358,055,936" in text
    assert "0.2111" in text and "rounds to 0.21" in text


def test_vgg16_and_alexnet_presets_equal_torchvision_counts(ex):
    from archlab.cost.model_cost import model_cost

    vgg, alex = model_cost("vgg16", image_size=224), model_cost("alexnet", image_size=224)
    assert vgg.params == 138_357_544 and alex.params == 61_100_840  # torchvision.models.vgg16 / alexnet
    assert round(vgg.macs / 1e9, 2) == 15.47 and round(alex.macs / 1e6) == 714  # torchvision's GFLOPS column
    assert ex["vgg_ratio"].lab_value == pytest.approx(19.75, abs=0.01) and ex["vgg_ratio"].verdict == "agrees"
    assert ex["alexnet_ratio"].lab_value == pytest.approx(8.72, abs=0.01) and ex["alexnet_ratio"].verdict == "agrees"
