"""Tables, geometric means with their intervals, and plots of comparisons."""

from __future__ import annotations

import math

import numpy as np

from ..plots import pyplot, save
from ..report import markdown_table
from .results import Comparison, NetworkComparison


def _percent_of(r: Comparison, ceiling_gflops: float) -> str:
    """Both tuners' GFLOPS as a percentage of a ceiling, "-" where there is none."""
    if not ceiling_gflops > 0:
        return "-"
    return f"{100 * r.gflops(r.minansor) / ceiling_gflops:.0f} / {100 * r.gflops(r.metaschedule) / ceiling_gflops:.0f}"


def _memory_cells(r: Comparison) -> list[str]:
    """GB/s of both tuners and their % of a copy of as many bytes, for a memory-bound task."""
    if not r.memory_bound:
        return ["-", "-"]
    a, b = r.gbs(r.minansor), r.gbs(r.metaschedule)
    return [f"{a:.1f} / {b:.1f}", f"{100 * a / r.copy_gbs:.0f} / {100 * b / r.copy_gbs:.0f}"]


def table_rows(results: list[Comparison]) -> tuple[list[str], list[list]]:
    headers = ["task", "trials", "minansor ms", "MetaSchedule ms", "ratio", "minansor GFLOPS",
               "MetaSchedule GFLOPS", "% peak (ours / MS)", "% sgemm (ours / MS)", "GB/s (ours / MS)",
               "% copy (ours / MS)", "search s/round (ours / MS)",
               "wall s (ours / MS)", "failed trials (ours / MS)", "checks"]
    rows = []
    for r in results:
        a, b = r.minansor, r.metaschedule
        rows.append([r.task, r.trials, f"{a.best_ms:.4g}", f"{b.best_ms:.4g}", f"{r.ratio:.3f}",
                     f"{r.gflops(a):.1f}", f"{r.gflops(b):.1f}", _percent_of(r, r.peak_gflops),
                     _percent_of(r, r.numpy_sgemm_gflops), *_memory_cells(r),
                     f"{a.search_s_per_round:.1f} / {b.search_s_per_round:.1f}", f"{a.wall_s:.0f} / {b.wall_s:.0f}",
                     f"{sum(a.failures.values())} / {sum(b.failures.values())}",
                     "ok" if a.check_ok and b.check_ok else "FAILED"])
    return headers, rows


def failures_markdown(results: list[Comparison]) -> list[str]:
    """Every class of failed trial each tuner met, per task, and the share of minansor's random
    programs that were valid, with why the others were rejected (a GPU program over the target's
    limits is invalid before it is built)."""
    lines = ["## Failed trials and valid programs", ""]
    for r in results:
        run = r.minansor
        valid = f" (valid: {100 * run.valid_rate:.0f} % of minansor's random programs)" \
            if not math.isnan(run.valid_rate) else ""
        lines.append(f"- {r.task}{valid}:")
        for tuner in (r.minansor, r.metaschedule):
            classes = "; ".join(f"{count} x `{line}`" for line, count in tuner.failures.items()) or "none"
            lines.append(f"  - {tuner.name}, failed trials: {classes}")
        if run.rejections:
            reasons = "; ".join(f"{count} x `{line}`" for line, count in run.rejections.items())
            lines.append(f"  - minansor, random programs rejected before any build: {reasons}")
    return lines + [""]


def geometric_mean(values: list[float]) -> float:
    return float(np.exp(np.mean(np.log(values)))) if len(values) else math.nan


def geometric_mean_ratio(results: list[Comparison]) -> float:
    return geometric_mean([r.ratio for r in results])


def geometric_mean_interval(ratios: list[float]) -> tuple[float, float]:
    """95 % interval of the geometric mean of `ratios`, taken as independent draws (normal
    approximation on their logs). One seed's ratios spread by 10 % and more, so a geometric
    mean means little without it."""
    logs = np.log(ratios)
    if len(logs) < 2:
        return math.nan, math.nan
    half = 1.96 * float(np.std(logs, ddof=1)) / math.sqrt(len(logs))
    return float(np.exp(logs.mean() - half)), float(np.exp(logs.mean() + half))


def markdown(results: list[Comparison], title: str, command: str, machine: str) -> str:
    headers, rows = table_rows(results)
    ceilings = ""
    if results:
        first = results[0]
        ceilings = f"fp32 peak (FMA-bound kernel, peak.py, same run): {first.peak_gflops:.0f} GFLOPS"
        if first.numpy_sgemm_gflops > 0:
            ceilings += f"; numpy sgemm (1024³, same run): {first.numpy_sgemm_gflops:.0f} GFLOPS"
        if first.bandwidth_gbs > 0:
            ceilings += (f"; memory bandwidth (STREAM triad over 128 MiB arrays, peak.py, same run): "
                         f"{first.bandwidth_gbs:.0f} GB/s. GB/s counts each argument's bytes once, and is given "
                         "for the tasks left of the roofline's ridge (fewer operations per byte than peak over "
                         "that bandwidth); % copy is against a STREAM copy of as many bytes, timed like the task "
                         "(its arrays stay in whatever cache they fit, as the task's do between runs)")
    lines = [f"# {title}", "", f"Command: `{command}`", "", f"Machine: {machine}", "", ceilings, "",
             *markdown_table(headers, rows)]
    lines += ["", f"Geometric mean of minansor / MetaSchedule best latency: **{geometric_mean_ratio(results):.3f}** "
                  "(below 1: minansor faster). Latencies are medians of both best programs re-measured alternately "
                  "in the same run; search s/round is everything but building and running.", "",
              *failures_markdown(results)]
    return "\n".join(lines) + "\n"


def seeds_markdown(by_seed: dict[int, list[Comparison]], title: str, command: str, machine: str) -> str:
    """One row per task with its ratio at every seed: the spread a single seed hides. The
    geometric mean is taken over every (task, seed) pair that both tuners finished."""
    seeds = sorted(by_seed)
    results = [r for s in seeds for r in by_seed[s]]
    ratios = {(r.task, s): r.ratio for s in seeds for r in by_seed[s]}
    headers = ["task"] + [f"ratio seed {s}" for s in seeds] + ["geomean over seeds"]
    rows = []
    for task in dict.fromkeys(r.task for r in results):
        cells = [f"{ratios[task, s]:.3f}" if (task, s) in ratios else "-" for s in seeds]
        rows.append([task] + cells + [f"{geometric_mean_ratio([r for r in results if r.task == task]):.3f}"])
    lines = [f"# {title}", "", f"Command: `{command}`", "", f"Machine: {machine}", "", *markdown_table(headers, rows)]
    per_seed = ", ".join(f"seed {s}: {geometric_mean_ratio(by_seed[s]):.3f}" for s in seeds)
    overall, (low, high) = geometric_mean_ratio(results), geometric_mean_interval([r.ratio for r in results])
    faster = sum(r.ratio < 1 for r in results)
    lines += ["", f"Geometric mean of minansor / MetaSchedule over all {len(results)} (task, seed) pairs: "
                  f"**{overall:.3f}** (below 1: minansor faster); per seed over its tasks: {per_seed}.",
              "", f"95 % interval of that mean, the pairs taken as independent: {low:.3f}–{high:.3f}. "
                  f"minansor was faster on {faster} of the {len(results)} pairs.", ""]
    return "\n".join(lines)


def plot_curves(results: list[Comparison], path: str) -> None:
    plt = pyplot()

    columns = min(3, len(results))
    rows = math.ceil(len(results) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5 * columns, 3.6 * rows), squeeze=False)
    for ax, r in zip(axes.flat, results):
        for tuner, style in ((r.minansor, "-"), (r.metaschedule, "--")):
            ax.plot(range(1, len(tuner.curve) + 1), tuner.curve, style, label=tuner.name)
        ax.set_title(r.task, fontsize=9)
        ax.set_xlabel("trials")
        ax.set_ylabel("best latency (ms, own measurement)")
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(results):]:
        ax.axis("off")
    save(fig, path)


def network_markdown(r: NetworkComparison, command: str, machine: str) -> str:
    return "\n".join([
        f"# minansor vs MetaSchedule on {r.network}, {r.trials} trials in total", "",
        f"Command: `{command}`", "", f"Machine: {machine}", "",
        "| network | tasks | trials | untuned ms | minansor ms | MetaSchedule ms | ratio | tuning wall s (ours / MS) "
        "| checks |", "|---|---|---|---|---|---|---|---|---|",
        f"| {r.network} | {r.tasks} | {r.trials} | {r.untuned_ms:.2f} | {r.minansor_ms:.2f} | {r.metaschedule_ms:.2f} "
        f"| {r.ratio:.3f} | {r.minansor_wall_s:.0f} / {r.metaschedule_wall_s:.0f} "
        f"| {'ok' if r.minansor_check_ok and r.metaschedule_check_ok else 'FAILED'} |", "",
        "End-to-end latencies are medians of both tuned builds run alternately in the Relax VM in the same "
        "process; both builds apply their records with MetaScheduleApplyDatabase to the same fused module.", ""])
