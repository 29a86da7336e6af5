"""Charts as inline SVG strings (matplotlib, text kept as text so it is searchable and small),
drawn from the report model when the report is rendered.

Every chart is a horizontal strip of accuracies: one row per source (the paper, each published
report, our runs per framework) with its 95% interval; our runs also show each seed as a dot,
final and best-of-evaluations side by side."""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING

import matplotlib

if TYPE_CHECKING:
    from audit.report.model import ClaimView, Section

matplotlib.use("Agg")
import matplotlib.pyplot as plt

plt.rcParams.update({"svg.fonttype": "none", "font.family": "DejaVu Sans", "font.size": 9,
                     "svg.hashsalt": "transfg-audit"})  # stable ids: the same report twice

COLORS = {"paper": "#333333", "reproduction": "#8e44ad", "issue": "#7f8c8d", "other": "#7f8c8d",
          "torch": "#d35400", "jittor": "#2471a3", "official": "#117a65"}


def _ticks(ax, points, y, color, half=0.12, **style) -> None:
    """A short vertical tick at each x in `points`, drawn as ONE path (NaN-separated segments):
    markers would be one SVG element each, and thousands of them make the PDF slow."""
    xs = [v for p in points for v in (p, p, math.nan)]
    ys = [v for _ in points for v in (y - half, y + half, math.nan)]
    ax.plot(xs, ys, color=color, lw=1.2, solid_capstyle="butt", **style)


def _svg(fig) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg"):]  # inline: without the XML prolog and doctype


def strip_chart(rows: list[dict], title: str, band: tuple[float, float] | None = None) -> str:
    """rows: {label, kind (a COLORS key), value, low, high, points (optional list), marker
    ('o' final, 'D' best), note}; values in percent. `band`: the claim's tolerance band."""
    height = 0.9 + 0.32 * len(rows)
    fig, ax = plt.subplots(figsize=(7.2, height))
    finite = [v for r in rows for v in (r.get("low"), r.get("high"), r.get("value"),
                                        *(r.get("points") or [])) if v is not None
              and math.isfinite(v)]
    if band:
        ax.axvspan(band[0], band[1], color="#27ae60", alpha=0.12, lw=0,
                   label="tolerance band")
        finite += list(band)
    for y, row in enumerate(reversed(rows)):
        color = COLORS.get(row["kind"], "#555555")
        if row.get("low") is not None and math.isfinite(row["low"]):
            ax.plot([row["low"], row["high"]], [y, y], color=color, lw=2, solid_capstyle="butt")
        points = row.get("points") or []
        if points:
            _ticks(ax, points, y + 0.18, color, half=0.1, alpha=0.7)
        if row.get("value") is not None and math.isfinite(row["value"]):
            ax.plot(row["value"], y, row.get("marker", "o"), color=color, ms=6,
                    mfc="white" if row.get("marker") == "D" else color)
    ax.set_yticks(range(len(rows)), [r["label"] for r in reversed(rows)])
    if finite:
        lo, hi = min(finite), max(finite)
        pad = max((hi - lo) * 0.08, 0.2)
        ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_xlabel("top-1 accuracy (%)  ·  bars: 95% intervals  ·  ticks: single seeds  ·  "
                  "◇ best-of-evaluations")
    ax.set_title(title, loc="left", fontsize=10)
    ax.grid(axis="x", color="#dddddd", lw=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return _svg(fig)


def seed_distribution(groups: list[dict], title: str) -> str:
    """groups: {label, kind, points (percent)}: every seed's accuracy per arm and framework."""
    fig, ax = plt.subplots(figsize=(7.2, 0.9 + 0.32 * max(len(groups), 1)))
    for y, group in enumerate(reversed(groups)):
        color = COLORS.get(group["kind"], "#555555")
        points = group["points"]
        _ticks(ax, points, y, color, half=0.2, alpha=0.75)
        if points:
            mean = sum(points) / len(points)
            ax.plot([mean, mean], [y - 0.35, y + 0.35], color="#1c2833", lw=3)
    ax.set_yticks(range(len(groups)), [g["label"] for g in reversed(groups)])
    ax.set_xlabel("top-1 accuracy (%) of each seed (ticks) · dark bar: mean")
    ax.set_title(title, loc="left", fontsize=10)
    ax.grid(axis="x", color="#dddddd", lw=0.6)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return _svg(fig)


def claim_chart(claim: ClaimView, section: Section) -> str:
    """The claim's arms: the paper and the published figures, then our runs per framework
    (final and best-of-evaluations); "" when there is nothing to draw."""
    rows: list[dict] = []
    for figure in section.published:
        if figure.arm in claim.arms:
            rows.append({"label": f"{figure.id} ({figure.kind})", "kind": figure.kind,
                         "value": 100 * figure.value, "low": 100 * figure.wilson.low,
                         "high": 100 * figure.wilson.high,
                         "marker": "D" if figure.reading == "best" else "o"})
    for arm in section.arms:
        if arm.arm not in claim.arms or arm.seeds == 0:
            continue
        if claim.frameworks and arm.framework not in claim.frameworks:
            continue
        label = f"ours: {arm.arm} / {arm.framework}"
        for suffix, mean, values, ci, marker in (
                (" final", arm.mean, arm.final, arm.ci, {}),
                (" best", arm.best_mean, arm.best, arm.best_ci, {"marker": "D"})):
            assert mean is not None  # an arm with seeds has its means
            rows.append({"label": label + suffix, "kind": arm.framework, **marker,
                         "value": 100 * mean, "points": [100 * v for v in values],
                         "low": 100 * ci.low if ci else None,
                         "high": 100 * ci.high if ci else None})
    if not rows:
        return ""
    band = (100 * claim.band[0], 100 * claim.band[1]) if claim.band else None
    return strip_chart(rows, claim.id, band)


def seed_chart(section: Section) -> str:
    """Every seed's final accuracy per arm and framework; "" without runs."""
    groups = [{"label": f"{a.arm} / {a.framework}", "kind": a.framework,
               "points": [100 * v for v in a.final]} for a in section.arms if a.seeds]
    if not groups:
        return ""
    return seed_distribution(groups, f"{section.name}: final accuracy of every seed")
