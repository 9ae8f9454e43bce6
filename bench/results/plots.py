"""Figures from stored runs (matplotlib, Agg backend, each written as PNG and PDF):

- Figure 1: MRECALL@k per target-diversity bin, one line per system (optionally one row of panels per answer count).
- Figure 5: output-embedding diversity of multi-vector retrievers against target diversity, one point per query.
- Figure 6: cosine similarity of gold pairs within a query vs gold pairs from two random queries, per task.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy import stats as sps  # noqa: E402

from bench.errors import BenchError  # noqa: E402
from bench.metrics import diversity as div  # noqa: E402
from bench.results.record import RunResult  # noqa: E402
from bench.results.report import check_comparable, display_name, diversity_of, pick_baseline  # noqa: E402
from bench.storage.atomic import atomic_path  # noqa: E402

OUTPUT_KEY = "output_diversity"  # AMER runs: extra["output_diversity"] = {pred_mean_pairwise_cos, target_…}


def save(fig: plt.Figure, stem: Path) -> list[Path]:
    """Write `<stem>.png` (150 dpi) and `<stem>.pdf`, each atomically; returns both paths."""
    paths = []
    for ext in ("png", "pdf"):
        path = stem.with_name(f"{stem.name}.{ext}")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=ext, dpi=150, bbox_inches="tight")
        paths.append(path)
    plt.close(fig)
    return paths


def figure1(runs: Mapping[str, RunResult], ks: Sequence[int], measure: str = "MRECALL", by: str = "cosine",
            by_answers: bool = False, baseline: str | None = None, n_bins: int = div.N_BINS,
            min_group: int = 40) -> plt.Figure:
    """MRECALL@k (×100) per quartile of target diversity, one line per system; a column per k.

    Bins are quartiles of the baseline run's per-query target diversity (`by` = cosine or Euclidean distance). With
    `by_answers`, one row per answer-count group (bench.metrics.diversity.answer_count_groups), bins computed within it.
    """
    check_comparable(runs)
    base, _ = pick_baseline(list(runs), baseline)
    td, source = diversity_of(runs, base)
    if td is None:
        raise BenchError("Figure 1 needs per-query target diversity, and none of these runs has it; rerun them")
    values = td.distance(by)
    groups = div.answer_count_groups(td.n_answers, min_group) if by_answers else [("all queries",
                                                                                   np.ones(len(td), bool))]
    fig, axes = plt.subplots(len(groups), len(ks), figsize=(4.6 * len(ks), 3.6 * len(groups)), squeeze=False)
    markers = "osD^vP*Xh<>"
    for r, (label, gmask) in enumerate(groups):
        gidx = np.flatnonzero(gmask)
        bins = np.full(len(td), -1)
        bins[gidx] = div.quartile_bins(values[gidx], n_bins)
        ranges = div.bin_ranges(values, bins, n_bins)
        ticks = [f"Q{i + 1}\n{lo:.2f}–{hi:.2f}\nn={n}" for i, (lo, hi, n) in enumerate(ranges)]
        for c, k in enumerate(ks):
            ax = axes[r][c]
            metric = f"{measure}@{k}"
            for j, (name, run) in enumerate(runs.items()):
                vals = run.values(metric)
                means = [100 * vals[bins == b].mean() if np.any(bins == b) else np.nan for b in range(n_bins)]
                ax.plot(range(n_bins), means, marker=markers[j % len(markers)], label=display_name(name, 40),
                        linewidth=1.8, markersize=6, alpha=0.9)
            ax.set_xticks(range(n_bins), ticks, fontsize=8)
            ax.set_ylim(-4, 104)
            ax.set_ylabel(f"{metric} (×100)")
            ax.set_xlabel(f"quartile of target {by} distance (range)", fontsize=9)
            ax.grid(alpha=0.3)
            title = f"{metric} — {label}" if by_answers else metric
            defined = values[gidx][np.isfinite(values[gidx])]
            if len(defined) and np.round(np.ptp(defined), 12) == 0:
                title += "\n(all queries equally diverse: bins split by order)"
            ax.set_title(title, fontsize=10)
    handles, labels = axes[0][0].get_legend_handles_labels()  # below the panels, never over a line
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=min(len(labels), 4), fontsize=9,
               frameon=False)
    task = next(iter(runs.values())).task
    fig.suptitle(f"{task}: {measure} per quartile of target diversity = mean pairwise {by} distance between a "
                 f"query's targets (Q1 least → Q4 most diverse)\ndiversity from {source}", fontsize=10)
    fig.tight_layout()
    return fig


def output_diversity(run: RunResult) -> tuple[np.ndarray, np.ndarray] | None:
    """(target, predicted) mean pairwise cosine similarity per query, from a multi-vector run's extra, else None."""
    rec = run.extra.get(OUTPUT_KEY)
    if not rec:
        return None
    try:
        pred = np.asarray(rec["pred_mean_pairwise_cos"], dtype=np.float64)
        tgt = rec.get("target_mean_pairwise_cos")
        if tgt is None:
            td = run.extra.get(div.RECORD_KEY)
            tgt = td["mean_pairwise_cos_sim"] if td else None
        if tgt is None:
            return None
        tgt_arr = np.asarray([np.nan if x is None else x for x in tgt], dtype=np.float64)
    except (KeyError, TypeError, ValueError) as exc:
        raise BenchError(f"run {run.run_id}: extra.{OUTPUT_KEY} is malformed ({exc})") from None
    if pred.shape != tgt_arr.shape or pred.ndim != 1:
        raise BenchError(f"run {run.run_id}: extra.{OUTPUT_KEY} has {pred.shape} predictions for {tgt_arr.shape} "
                         "targets")
    return tgt_arr, pred


def figure5(runs: Mapping[str, RunResult]) -> plt.Figure:
    """Per query: mean pairwise cosine distance of a multi-vector retriever's query vectors (y) against that of the
    query's targets (x); a panel per run, the y = x diagonal, Pearson r and Spearman ρ in the title."""
    usable = {name: od for name, run in runs.items() if (od := output_diversity(run)) is not None}
    if not usable:
        raise BenchError(f"Figure 5 needs runs with extra.{OUTPUT_KEY} (multi-vector retrievers such as AMER); "
                         f"none of {', '.join(runs)} has it")
    fig, axes = plt.subplots(1, len(usable), figsize=(4.8 * len(usable), 4.4), squeeze=False)
    for ax, (name, (tgt, pred)) in zip(axes[0], usable.items(), strict=True):
        ok = np.isfinite(tgt) & np.isfinite(pred)
        x, y = 1.0 - tgt[ok], 1.0 - pred[ok]
        ax.scatter(x, y, s=10, alpha=0.5, edgecolors="none")
        lo = float(min(x.min(), y.min())) if len(x) else 0.0  # zoom on the data, same range on both axes
        hi = float(max(x.max(), y.max())) if len(x) else 1.0
        pad = max(0.05, 0.08 * (hi - lo))
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="grey", linestyle="--", linewidth=1, label="y = x")
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(lo - pad, hi + pad)
        stats_txt = "\n(every query's targets equally diverse: no correlation to show)" if np.ptp(x) <= 1e-9 else ""
        if len(x) > 2 and np.ptp(x) > 1e-9 and np.ptp(y) > 1e-9:  # no correlation of a constant
            stats_txt = f"\nPearson r = {sps.pearsonr(x, y)[0]:.2f}, Spearman ρ = {sps.spearmanr(x, y)[0]:.2f}"
        ax.set_title(f"{display_name(name, 40)} (n = {int(ok.sum())}){stats_txt}", fontsize=10)
        ax.set_xlabel("target diversity: mean pairwise cosine distance of targets")
        ax.set_ylabel("output diversity: mean pairwise cosine distance\nof the predicted query vectors")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    task = next(iter(runs.values())).task
    fig.suptitle(f"{task}: do the query vectors spread as far apart as the targets?", fontsize=11)
    fig.tight_layout()
    return fig


def gold_similarity_of(run: RunResult) -> dict | None:
    rec = run.extra.get(div.RECORD_KEY)
    return rec.get("gold_similarity") if rec else None


def figure6(runs_by_task: Mapping[str, RunResult]) -> plt.Figure:
    """Per task: histograms (densities) of the cosine similarity of gold pairs within one query and of gold pairs from
    two random queries (the appendix statistic), with both means marked."""
    usable = {task: g for task, run in runs_by_task.items() if (g := gold_similarity_of(run))}
    if not usable:
        raise BenchError(f"Figure 6 needs runs that record extra.{div.RECORD_KEY}; rerun the task(s)")
    fig, axes = plt.subplots(1, len(usable), figsize=(5.0 * len(usable), 3.8), squeeze=False)
    for ax, (task, g) in zip(axes[0], usable.items(), strict=True):
        edges = np.asarray(g["hist_edges"], dtype=np.float64)
        width = np.diff(edges)
        for key, label, color in (("within", "gold pairs within a query", "tab:blue"),
                                  ("random", "gold pairs from two random queries", "tab:orange")):
            counts = np.asarray(g[f"{key}_hist"], dtype=np.float64)
            dens = counts / (counts.sum() * width) if counts.sum() else counts
            mean = g[f"{key}_mean"]
            n = g[f"n_{key}_pairs"]
            ax.stairs(dens, edges, fill=True, alpha=0.35, color=color,
                      label=f"{label}: mean {mean:.3f} ({n:,} pairs)" if mean is not None else label)
            ax.stairs(dens, edges, color=color, linewidth=1.2)
            if mean is not None:
                ax.axvline(mean, color=color, linestyle="--", linewidth=1.2)
        ax.set_xlabel("cosine similarity of the pair (document encoder)")
        ax.set_ylabel("density")
        used = np.flatnonzero(np.add(g["within_hist"], g["random_hist"]))
        lo = max(-1.0, edges[used[0]] - 0.1) if len(used) else -1.0
        hi = min(1.0, edges[used[-1] + 1] + 0.1) if len(used) else 1.0
        ax.set_xlim(lo, hi)
        ax.set_title(f"{task}\n(target mode: {g.get('mode', '?')}, seed {g.get('seed', '?')})", fontsize=10)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)
        ax.grid(alpha=0.3)
    fig.suptitle("Are a query's gold documents more alike than random gold pairs?", fontsize=11)
    fig.tight_layout()
    return fig
