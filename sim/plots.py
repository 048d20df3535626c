"""PNG plots of a sweep's summary (matplotlib, Agg backend: no display needed).

Two figures, each a panel per metric with 95% confidence intervals across seeds as error bars:
``vs_nodes.png`` (x: node count, a line per scenario and latency profile) and
``vs_faults.png`` (x: scenario, a bar group per latency profile, at the largest node count).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: never try to open a display
import matplotlib.pyplot as plt  # noqa: E402

PANELS = (
    ("commit_latency_ms_p50", "commit latency p50 (virtual ms)"),
    ("throughput_tx_per_s", "throughput (tx / virtual s)"),
    ("messages_per_block", "messages per committed block"),
    ("bytes_per_block", "bytes per committed block"),
    ("view_change_recovery_ms", "view-change recovery (virtual ms)"),
)
DPI = 80  # keeps each PNG well under 200 KB


def _finite(value: Any) -> float:
    value = float(value)
    return value if math.isfinite(value) else math.nan


def _axes(count: int):
    columns = 3
    rows = (count + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(5 * columns, 3.6 * rows), dpi=DPI)
    flat = list(axes.flat)
    for extra in flat[count:]:
        extra.set_visible(False)
    return figure, flat


def plot_vs_nodes(summary: Sequence[dict[str, Any]], path: str | Path) -> Path:
    series: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in summary:
        series.setdefault((row["scenario"], row["profile"]), []).append(row)
    figure, axes = _axes(len(PANELS))
    for axis, (metric, label) in zip(axes, PANELS):
        for (scenario, profile), rows in sorted(series.items()):
            rows = sorted(rows, key=lambda r: r["nodes"])
            axis.errorbar([r["nodes"] for r in rows], [_finite(r[metric]) for r in rows],
                          yerr=[_finite(r[f"{metric}_ci95"]) for r in rows], marker="o",
                          capsize=3, label=f"{scenario} / {profile}")
        axis.set_xscale("log", base=2)
        counts = sorted({row["nodes"] for row in summary})
        axis.set_xticks(counts)
        axis.set_xticklabels([str(count) for count in counts])
        axis.minorticks_off()
        axis.set_xlabel("nodes")
        axis.set_title(label, fontsize=10)
        axis.grid(True, alpha=0.3)
        if metric in ("messages_per_block", "bytes_per_block"):
            axis.set_yscale("log")
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower right", fontsize=8, ncol=1,
                  bbox_to_anchor=(0.98, 0.05))
    figure.suptitle("huzhu simulate sweep: against node count (mean, 95% CI across seeds)")
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path)
    plt.close(figure)
    return path


def plot_vs_faults(summary: Sequence[dict[str, Any]], path: str | Path) -> Path:
    largest = max(row["nodes"] for row in summary)
    rows = [row for row in summary if row["nodes"] == largest]
    scenarios = sorted({row["scenario"] for row in rows}, key=lambda s: (s != "normal", s))
    profiles = sorted({row["profile"] for row in rows})
    width = 0.8 / max(1, len(profiles))
    figure, axes = _axes(len(PANELS))
    for axis, (metric, label) in zip(axes, PANELS):
        for index, profile in enumerate(profiles):
            by_scenario = {row["scenario"]: row for row in rows if row["profile"] == profile}
            xs = [i + index * width for i in range(len(scenarios))]
            values = [_finite(by_scenario[s][metric]) if s in by_scenario else math.nan
                      for s in scenarios]
            errors = [_finite(by_scenario[s][f"{metric}_ci95"]) if s in by_scenario else 0.0
                      for s in scenarios]
            axis.bar(xs, values, width=width, yerr=errors, capsize=3, label=profile)
        axis.set_xticks([i + width * (len(profiles) - 1) / 2 for i in range(len(scenarios))])
        axis.set_xticklabels(scenarios, rotation=20, fontsize=8)
        axis.set_title(label, fontsize=10)
        axis.grid(True, axis="y", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower right", fontsize=8, bbox_to_anchor=(0.98, 0.05))
    figure.suptitle(f"huzhu simulate sweep: against faults at {largest} nodes "
                    "(mean, 95% CI across seeds)")
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path)
    plt.close(figure)
    return path
