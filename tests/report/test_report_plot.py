"""The chart is checked on its pixels: bars are where the plot says, in the right colour and height."""

import numpy as np
import pytest
from matplotlib.colors import to_rgb
from matplotlib.image import imread

from cf_tasks.report.loader import load_runs
from cf_tasks.report.plot import COLORS, plot_breakdown, plot_cf_vs_int
from cf_tasks.report.tables import breakdown_rows, summary_rows


def _mask(img: np.ndarray, color: str, tol: float = 0.03) -> np.ndarray:
    return np.all(np.abs(img[..., :3] - np.array(to_rgb(color))) < tol, axis=-1)


def _column_run(mask: np.ndarray, x: int) -> int:
    """Length of the longest vertical run of True in column x."""
    best = cur = 0
    for v in mask[:, x]:
        cur = cur + 1 if v else 0
        best = max(best, cur)
    return best


@pytest.fixture
def chart(two_model_dir, tmp_path):
    runs = load_runs([two_model_dir])
    return plot_cf_vs_int(summary_rows(runs), tmp_path / "chart.png", runs=[r.label for r in runs])


def test_png_shows_bars_in_expected_places(chart):
    img = imread(chart.path)
    assert img.shape[0] == chart.height and img.shape[1] == chart.width
    cf_mask, int_mask = _mask(img, COLORS["counterfactual"]), _mask(img, COLORS["interventional"])
    assert cf_mask.sum() > 500 and int_mask.sum() > 500  # both kinds of bar are visible

    bars = {(b.run, b.family, b.variant): b for b in chart.bars}
    # model-a if_else CF 25, Int 75; model-a while CF 0, Int 100; model-b if_else 50/100; while CF 50, Int missing
    assert len(bars) == 7
    heights = {}
    for key, bar in bars.items():
        mask = cf_mask if key[2] == "counterfactual" else int_mask
        x = int(round((bar.left + bar.right) / 2))
        run = _column_run(mask, x)
        heights[key] = run
        assert run == pytest.approx(bar.bottom - bar.top, abs=3), key
        if bar.value > 0:
            y = int(round((bar.top + bar.bottom) / 2))
            assert mask[y, x], f"{key}: pixel at the bar centre is not the bar colour"
    # bar heights in the image are proportional to the values
    unit = heights[("model-a", "while", "interventional")] / 100
    assert unit > 1
    for key, bar in bars.items():
        assert heights[key] == pytest.approx(100 * bar.value * unit, abs=3), key
    assert heights[("model-a", "while", "counterfactual")] == 0  # 0% draws nothing
    # the missing interventional bar of model-b on `while` is not drawn
    b_cf = bars[("model-b", "while", "counterfactual")]
    width = int(b_cf.right - b_cf.left)
    region = int_mask[:, int(b_cf.right) + 2: int(b_cf.right) + width - 2]
    assert region.sum() == 0


def test_cf_bars_left_of_int_bars_and_panels_per_family(chart):
    bars = {(b.run, b.family, b.variant): b for b in chart.bars}
    for run in ("model-a", "model-b"):
        assert bars[(run, "if_else", "counterfactual")].right <= bars[(run, "if_else", "interventional")].left + 1
    # the while panel is to the right of the if_else panel
    assert bars[("model-a", "while", "interventional")].left > bars[("model-b", "if_else", "interventional")].right


def test_breakdown_plot_written(two_model_dir, tmp_path):
    runs = load_runs([two_model_dir])
    rows = breakdown_rows(runs, "n_consistent")
    rows += [{**r, "bucket": 2, "exact_match": 1 - r["exact_match"]} for r in rows]  # two buckets to compare
    fig = plot_breakdown(rows, tmp_path / "b.png", "n_consistent")
    img = imread(fig.path)
    assert img.shape[0] > 100 and (img[..., :3] < 0.5).any()
    assert plot_breakdown([], tmp_path / "none.png", "level") is None


def test_empty_summary_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="nothing to plot"):
        plot_cf_vs_int([], tmp_path / "x.png")


def test_breakdown_with_one_bucket_per_family_is_skipped_and_the_report_says_so(two_model_dir, tmp_path):
    """Every fixture doc is level "easy": a by-level plot would draw one point per panel (issue 11)."""
    from cf_tasks.report.builder import ReportOptions, build_report

    runs = load_runs([two_model_dir])
    rows = breakdown_rows(runs, "level")
    assert rows and {r["bucket"] for r in rows} == {"easy"}
    assert plot_breakdown(rows, tmp_path / "level.png", "level") is None
    assert not (tmp_path / "level.png").exists()
    result = build_report(runs, tmp_path / "report", ReportOptions())
    assert "by_level" not in result.figures and not (tmp_path / "report" / "by_level.png").exists()
    assert "No figure: no family has two `level` values" in result.report_path.read_text()
