"""report.md / report.json / plots of synthetic reports: numbers against the rows, baselines, files.

The rows come from `StreamingMetrics` on simulated probabilities (tests/report_fixtures.py): fake
numbers, consistent with each other, no model.
"""

import json
import os
import re

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from evaluation import metrics, plots, report_markdown
from evaluation.report import Report, row_interval
from tests.report_fixtures import COMMON, make_report

THREE = ("gaussian_noise", "fog", "contrast")
NUMBER = r"-?\d+\.\d+"


def sections(md: str) -> dict[str, list[list[str]]]:
    """`## title` -> its table rows (header first), cells stripped; "" for the intro."""
    out: dict[str, list[list[str]]] = {"": []}
    title = ""
    for line in md.splitlines():
        if line.startswith("## "):
            title = line[3:]
            out[title] = []
        elif line.startswith("|") and not line.startswith("|---"):
            out[title].append([c.strip() for c in line.strip("|").split("|")])
    return out


def parse(text: str) -> tuple[float, tuple | float | None]:
    """ "0.873 ± 0.008" -> (0.873, 0.008); "0.010 [0.001, 0.067]" -> (0.010, (0.001, 0.067));
    "0.873" -> (0.873, None)."""
    m = re.fullmatch(rf"({NUMBER})(?: ± ({NUMBER})| \[({NUMBER}), ({NUMBER})\])?", text)
    assert m, f"not a number cell: {text!r}"
    if m[2] is not None:
        return float(m[1]), float(m[2])
    return float(m[1]), None if m[3] is None else (float(m[3]), float(m[4]))


ENDS = ("rms_calibration_error", "expected_calibration_error")  # intervals shown as [lo, hi]


def assert_cell(text: str, value: float, interval=None, key: str = "accuracy") -> None:
    """The cell shows `value` (3 decimals) and its interval: [lo, hi] for the calibration
    errors, else ± the larger side."""
    shown, extra = parse(text)
    assert shown == pytest.approx(value, abs=5e-4 + 1e-12)
    if interval is None:
        assert extra is None
    elif key in ENDS:
        assert extra == pytest.approx(tuple(interval), abs=5e-4)
    else:
        assert extra == pytest.approx(max(value - interval[0], interval[1] - value), abs=5e-4)


@pytest.fixture(scope="module")
def full():
    return make_report(corruptions=THREE, with_ci=True, consistency=True)


def test_interval_format_hand_worked():
    assert report_markdown.with_interval(0.873, (0.865, 0.881)) == "0.873 ± 0.008"
    # asymmetric: the larger side (0.873 - 0.860 = 0.013), never the smaller
    assert report_markdown.with_interval(0.873, (0.860, 0.880)) == "0.873 ± 0.013"
    assert report_markdown.with_interval(0.873, None) == "0.873"
    assert report_markdown.with_interval(float("nan"), (0.1, 0.2)) == "—"
    # calibration errors: the ends (skewed intervals; this one lies above the estimate)
    assert report_markdown.with_interval(0.0104, (0.0211, 0.0675), True) == "0.010 [0.021, 0.068]"
    row = {"rms_calibration_error": 0.0104, "ci95": {"rms_calibration_error": [0.0211, 0.0675]}}
    assert report_markdown.cell(row, "rms_calibration_error") == "0.010 [0.021, 0.068]"
    row = {"accuracy": 0.8, "error": 0.2, "ci95": {"accuracy": [0.78, 0.81]}}
    assert row_interval(row, "error") == pytest.approx((0.19, 0.22))
    assert report_markdown.cell(row, "error") == "0.200 ± 0.020"
    assert row_interval({"ci95": {"accuracy": [None, 0.9]}}, "accuracy") is None
    assert row_interval({"accuracy": 0.8}, "accuracy") is None


def test_markdown_numbers_equal_the_rows(full):
    md = full.to_markdown()
    tables = sections(md)
    clean = full.clean()
    # summary: clean with its interval; averages are plain means of the levels
    summary = {r[0]: r[1:] for r in tables["Summary"][1:]}
    acc, rms = (
        summary["Accuracy (higher is better)"],
        summary["RMS calibration error (lower is better)"],
    )
    assert_cell(acc[0], clean["accuracy"], clean["ci95"]["accuracy"])
    rms_ci = clean["ci95"]["rms_calibration_error"]
    assert_cell(rms[0], clean["rms_calibration_error"], rms_ci, "rms_calibration_error")
    assert tables["Summary"][0][1:3] == [
        "Clean",
        "Brightness average, factors 0.8, 0.9, 1.1, 1.2",
    ]
    for col, shift in ((1, "brightness"), (2, "blur")):
        assert_cell(acc[col], np.mean([r["accuracy"] for r in full.rows(shift)]))
        assert_cell(rms[col], np.mean([r["rms_calibration_error"] for r in full.rows(shift)]))
    corrupted = [r for r in full.results if r["suite"] == "imagenet-c"]
    assert_cell(acc[3], np.mean([r["accuracy"] for r in corrupted]))
    # per-level tables: every metric of every level, intervals where the row has them
    keys = ("accuracy", "rms_calibration_error", "expected_calibration_error", "nll")
    for title, shift in (("Brightness by factor", "brightness"), ("Gaussian blur by σ", "blur")):
        header, *body = tables[title]
        assert all(h.endswith("is better)") for h in header[1:])
        assert [float(b[0]) for b in body] == [r["level"] for r in full.rows(shift)]
        for cells, row in zip(body, full.rows(shift), strict=True):
            for text, key in zip(cells[1:], keys, strict=True):
                assert_cell(text, row[key], row["ci95"].get(key), key)
    # corruptions: errors = 1 - accuracy with the accuracy's interval mirrored, means
    header, *body = tables["Common corruptions (ImageNet-C)"]
    assert header[:3] == ["Corruption", "Family", "Error at severity 1"]
    assert [b[:2] for b in body] == [["gaussian_noise", "noise"], ["fog", "weather"],
                                     ["contrast", "digital"]]  # fmt: skip
    for cells, name in zip(body, THREE, strict=True):
        rows = full.rows(name, "imagenet-c")
        for text, row in zip(cells[2:7], rows, strict=True):
            lo, hi = row["ci95"]["accuracy"]
            assert_cell(text, 1 - row["accuracy"], (1 - hi, 1 - lo))
        assert_cell(cells[7], np.mean([1 - r["accuracy"] for r in rows]))
    overall = np.mean([1 - r["accuracy"] for r in corrupted])
    assert f"Mean error over 3 corruptions and their severities: {overall:.3f}" in md


def test_consistency_table_uses_plain_names(full):
    tables = sections(full.to_markdown())
    body = {r[0]: r[1] for r in tables["Consistency under small shifts and noise"][1:]}
    label = (
        "Shift consistency: same top-1 class under two random shifts of up to 12.5% of the image"
        " side (higher is better)"
    )
    assert_cell(body[label], full.consistency["shift_consistency"])
    assert len(body) == 4 and all(k.endswith("is better)") for k in body)
    values = sorted(parse(v)[0] for v in body.values())
    keys = ("shift_consistency", "p_top1_change", "mean_abs_change", "flip_probability_noise")
    assert values == pytest.approx(sorted(full.consistency[k] for k in keys), abs=5e-4)
    md = full.to_markdown()
    assert not any(k in md for k in keys)
    # an older report without settings: the plain names, no details, no crash
    old = Report(full.results, {k: full.consistency[k] for k in keys}, {})
    assert (
        "| Shift consistency: same top-1 class under two random shifts (higher is better) |"
        in old.to_markdown()
    )


@pytest.mark.parametrize(
    "meta, shown",
    [
        ({"dataset": "data/my_images.npz", "dataset_name": None}, "`data/my_images.npz`"),
        ({"dataset": None, "dataset_name": "pathmnist"}, "`pathmnist`"),
        ({"dataset": None, "dataset_name": None}, "`(data set not recorded)`"),
    ],
)
def test_data_set_name(meta, shown):
    md = make_report(n=300, meta=meta).to_markdown()
    assert f"on data set {shown}: 300 examples; 28 px images" in md
    assert "None" not in md


def test_old_report_without_new_meta():
    old = make_report(n=300, corruptions=THREE)
    old.meta = {"model": "m", "dataset_name": None, "suites": ["study", "imagenet-c"]}
    md = old.to_markdown()
    assert "Model `m` on data set `(data set not recorded)`: 300 examples; suites" in md
    assert "±" not in md and "None" not in md
    assert "No mCE: this report does not record the image size" in md
    assert old.to_dict()["corruption_summary"]["baseline"] is None


def _hand_mce(report, base_clean, base_errors):
    """mCE and relative mCE x100 from the rows, by the paper's formula."""
    clean_error = 1 - report.clean()["accuracy"]
    ce, rel = [], []
    for name in THREE:
        mean_err = np.mean([1 - r["accuracy"] for r in report.rows(name, "imagenet-c")])
        ce.append(mean_err / base_errors[name])
        rel.append((mean_err - clean_error) / (base_errors[name] - base_clean))
    return 100 * np.mean(ce), 100 * np.mean(rel), 100 * ce[0]


@pytest.mark.parametrize("image_size", [224, [224, 224], 28, None])
def test_mce_only_against_a_fitting_baseline(image_size):
    report = make_report(n=400, corruptions=THREE, meta={"image_size": image_size})
    md = report.to_markdown()
    summary = report.to_dict()["corruption_summary"]
    header, *body = sections(md)["Common corruptions (ImageNet-C)"]
    means = {n: np.mean([1 - r["accuracy"] for r in report.rows(n, "imagenet-c")]) for n in THREE}
    assert summary["mean_error"] == pytest.approx(means)
    if image_size in (224, [224, 224]):
        mce, rel, ce0 = _hand_mce(report, metrics.ALEXNET_CLEAN_ERROR, metrics.ALEXNET_ERRORS)
        assert f"mCE {mce:.1f}, relative mCE {rel:.1f} over 3 corruptions, against AlexNet" in md
        assert "AlexNet on ImageNet-C" in md and summary["mce"] == pytest.approx(mce / 100)
        assert header[-2:] == ["CE ×100 (lower is better)", "Relative CE ×100 (lower is better)"]
        assert body[0][-2] == f"{ce0:.1f}"
    else:
        assert "mCE 1" not in md and "CE ×100" not in " ".join(header)
        assert "mce" not in summary and summary["baseline"] is None
        why = "these images are 28 px" if image_size == 28 else "does not record the image size"
        assert why in md and "Shown: unnormalised errors." in md


def test_mce_against_a_given_baseline(tmp_path):
    report = make_report(n=400, corruptions=THREE)  # 28 px: only a given baseline fits
    reference = make_report(n=400, corruptions=THREE, seed=7, meta={"model": "reference"})
    baseline = reference.baseline_errors()
    md = report.to_markdown(baseline)
    errors = {
        n: np.mean([1 - r["accuracy"] for r in reference.rows(n, "imagenet-c")]) for n in THREE
    }
    mce, rel, ce0 = _hand_mce(report, 1 - reference.clean()["accuracy"], errors)
    assert (
        f"mCE {mce:.1f}, relative mCE {rel:.1f} over 3 corruptions, against model `reference` on "
        "pathmnist.npz" in md
    )
    assert sections(md)["Common corruptions (ImageNet-C)"][1][-2] == f"{ce0:.1f}"
    assert report.to_dict(baseline)["corruption_summary"]["baseline"] == baseline["name"]
    # a baseline that lost nothing to fog: relative CE undefined, shown as a dash, not "nan"
    flat = baseline | {"corruptions": baseline["corruptions"] | {"fog": baseline["clean"]}}
    fog = sections(report.to_markdown(flat))["Common corruptions (ImageNet-C)"][2]
    assert fog[0] == "fog" and fog[-1] == "—" and "nan" not in report.to_markdown(flat)
    # a baseline with none of these corruptions: no mCE, one line saying why, no crash
    other = {"name": "run X", "clean": 0.1, "corruptions": {"snow": 0.3}}
    assert "No mCE: run X has none of these corruptions." in report.to_markdown(other)


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_save_honours_the_umask(tmp_path, monkeypatch, umask, mode):
    monkeypatch.setattr(plots, "to_png", lambda fig, dpi=110: b"\x89PNG stand-in")  # speed
    report = make_report(n=200)
    (tmp_path / "report.md").write_text("old")
    os.chmod(tmp_path / "report.md", 0o600)
    old = os.umask(umask)
    try:
        paths = report.save(tmp_path)
    finally:
        os.umask(old)
    assert {p.name: os.stat(p).st_mode & 0o777 for p in paths.values()} == {
        p.name: mode for p in paths.values()
    }
    assert sorted(f.name for f in tmp_path.iterdir()) == sorted(p.name for p in paths.values())


def test_save_writes_strict_json_and_real_pngs(tmp_path, full):
    paths = full.save(tmp_path)
    data = json.loads(paths["json"].read_text())
    assert data["summary"]["clean"]["ci95"] == full.clean()["ci95"]
    assert data["corruption_summary"]["mean_error_overall"] == pytest.approx(
        np.mean([r["error"] for r in full.results if r["suite"] == "imagenet-c"])
    )
    assert paths["markdown"].read_text() == full.to_markdown()
    for kind in ("accuracy_plot", "reliability_plot"):
        assert paths[kind].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------- figures
def _boxes_overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


@pytest.mark.parametrize("with_ci", [True, False])
def test_accuracy_figure_is_readable(with_ci):
    report = make_report(n=300, corruptions=COMMON, with_ci=with_ci)
    fig = plots.accuracy_figure(report)
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw_without_rendering()
    axes = {ax.get_title(): ax for ax in fig.axes}
    assert list(axes) == [
        "Brightness: accuracy by factor",
        "Gaussian blur: accuracy by σ",
        "All corruptions: mean accuracy",
        "Noise corruptions",
        "Blur corruptions",
        "Weather corruptions",
        "Digital corruptions",
    ]
    clean = report.clean()["accuracy"]
    for title, ax in axes.items():
        legend = ax.get_legend()
        # the legend lies outside the data and does not cover the axis label
        assert not _boxes_overlap(
            legend.get_window_extent(renderer), ax.get_window_extent(renderer)
        )
        label_box = ax.xaxis.label.get_window_extent(renderer)
        assert not _boxes_overlap(legend.get_window_extent(renderer), label_box), title
        # the clean reference line is labelled in the legend and at the right of the axes
        lines = {line.get_label(): line for line in ax.get_lines()}
        assert lines[f"clean ({clean:.3f})"].get_ydata()[0] == pytest.approx(clean)
        assert f"clean\n{clean:.3f}" in [t.get_text() for t in ax.texts]
    for title in ("All corruptions: mean accuracy", "Noise corruptions", "Digital corruptions"):
        ticks = axes[title].get_xticks()
        assert list(ticks) == [1, 2, 3, 4, 5]
        assert [t.get_text() for t in axes[title].get_xticklabels()] == ["1", "2", "3", "4", "5"]
    assert [t.get_text() for t in axes["Brightness: accuracy by factor"].get_xticklabels()] == [
        "0.8", "0.9", "1", "1.1", "1.2"
    ]  # fmt: skip
    digital = axes["Digital corruptions"]
    curves = [ln for ln in digital.get_lines() if not ln.get_label().startswith("clean")]
    assert [c.get_label() for c in curves] == [
        "contrast", "elastic transform", "pixelate", "jpeg compression"
    ]  # fmt: skip
    assert len({c.get_color() for c in curves}) == 4  # four distinct colours
    assert len({c.get_marker() for c in curves}) == 4  # and markers
    bands = digital.collections
    suptitle = fig.get_suptitle()
    if not with_ci:
        assert not bands and "shaded" not in suptitle
        return
    assert "shaded: 95% confidence intervals" in suptitle
    # the band of "pixelate" (third curve) spans each severity's interval
    vertices = bands[2].get_paths()[0].vertices
    for row in report.rows("pixelate", "imagenet-c"):
        ys = vertices[np.isclose(vertices[:, 0], row["level"]), 1]
        assert ys.min() == pytest.approx(row["ci95"]["accuracy"][0])
        assert ys.max() == pytest.approx(row["ci95"]["accuracy"][1])


def test_corruption_panels_are_balanced_without_study():
    report = make_report(n=200, study=False, corruptions=COMMON, severities=(1, 3))
    fig = plots.accuracy_figure(report)
    rows = sorted({round(ax.get_position().y0, 3) for ax in fig.axes}, reverse=True)
    per_row = [sum(round(ax.get_position().y0, 3) == y for ax in fig.axes) for y in rows]
    assert per_row == [3, 2]  # mean + 4 families
    assert list(fig.axes[1].get_xticks()) == [1, 3]


def test_reliability_figure_shows_bin_counts(full):
    fig = plots.reliability_figure(full)
    titles = [ax.get_title() for ax in fig.axes[::2]]
    assert titles[0].startswith("clean\nRMS calibration error ")
    assert titles[1].startswith("brightness factor 0.8\n")  # |log 0.8| > |log 1.2|
    assert titles[2].startswith("blur σ 0.9\n")
    assert titles[3] == "3 corruptions, severity 5, pooled"
    written = [[int(t.get_text()) for t in ax.texts] for ax in fig.axes[1::2]]
    assert written[0] == full.clean()["reliability"]["count"]
    assert written[2] == full.rows("blur")[-1]["reliability"]["count"]
    hardest = [full.rows(n, "imagenet-c")[-1]["reliability"] for n in THREE]
    assert written[3] == list(np.sum([r["count"] for r in hardest], axis=0))
    # pooled accuracy per bin = correct examples / examples, over the three rows
    bars = [p.get_height() for p in fig.axes[6].patches]
    correct = np.sum([np.multiply(r["accuracy"], r["count"]) for r in hardest], axis=0)
    counts = np.sum([r["count"] for r in hardest], axis=0)
    assert bars == pytest.approx(list(correct[counts > 0] / counts[counts > 0]))


def test_reliability_without_counts_says_so():
    report = make_report(n=200, study=False)
    del report.clean()["reliability"]["count"]
    fig = plots.reliability_figure(report)
    assert [t.get_text() for t in fig.axes[1].texts] == ["bin counts not recorded"]
