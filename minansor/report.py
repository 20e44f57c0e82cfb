"""`minansor report WORK_DIR`: a tuning run seen from its records, as plots and a markdown page.

Reads only the work dir (trials.jsonl and the search trace rounds.jsonl), so it works on a run
that is still going, was killed, or came from another machine. Writes next to the records:

- report-curve.png   best latency vs trials, per task
- report-model.png   the cost model's predicted score vs the measured throughput, and the rank
                     correlation per round
- report-time.png    where each round's time went (trace.PHASES), stacked
- report.md          a table per task and the time split of the whole run
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from .config import SearchConfig
from .plots import pyplot, save
from .records import TRIALS_FILE, Trial, read_records
from .search.trace import PHASES


def markdown_table(headers: list[str], rows: list[list]) -> list[str]:
    """A markdown table, as lines: every results page writes its tables with this."""
    return ["| " + " | ".join(str(h) for h in headers) + " |", "|" + "---|" * len(headers)] + \
        ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]

CURVES_SHOWN = 12  # tasks drawn in the curve plot (the ones with the most trials)


@dataclass
class TaskSummary:
    task: str
    trials: int
    failed: int
    rounds: int
    best_ms: float
    first_best_at: int  # trials the task had when its best program was measured
    rank_correlation: float  # median over the rounds in which the model ranked anything
    valid_rate: float  # mean over rounds


def round_split(record: dict) -> dict[str, float]:
    """A round's seconds per phase. Trace records written before the per-phase split carry only
    the search total and the summed build and run times: those show as search / build / run."""
    if "split_s" in record:
        return {phase: float(record["split_s"].get(phase, 0.0)) for phase in PHASES}
    return {"search": float(record.get("search_s", 0.0)), "build": float(record.get("build_s", 0.0)),
            "run": float(record.get("run_s", 0.0))}


def best_so_far(trials: list[Trial]) -> list[float]:
    """Best latency (seconds) after each trial, in recorded order; inf until one succeeds."""
    best, out = math.inf, []
    for trial in trials:
        best = min(best, trial.median_s)
        out.append(best)
    return out


def summarize(trials: list[Trial], rounds: list[dict]) -> list[TaskSummary]:
    by_task: dict[str, list[Trial]] = {}
    for trial in trials:
        by_task.setdefault(trial.task, []).append(trial)
    out = []
    for task, history in by_task.items():
        own = [r for r in rounds if r.get("task") == task]
        curve = best_so_far(history)
        best = curve[-1]
        correlations = [r["rank_correlation"] for r in own if r.get("rank_correlation") is not None
                        and np.isfinite(r["rank_correlation"])]
        out.append(TaskSummary(
            task, len(history), sum(not t.ok for t in history), len(own), best * 1e3,
            curve.index(best) + 1 if math.isfinite(best) else 0,
            float(np.median(correlations)) if correlations else math.nan,
            float(np.mean([r["valid_rate"] for r in own if "valid_rate" in r] or [math.nan]))))
    return sorted(out, key=lambda s: -s.trials)


def plot_curves(trials: list[Trial], summaries: list[TaskSummary], path: str) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for summary in summaries[:CURVES_SHOWN]:
        curve = np.array(best_so_far([t for t in trials if t.task == summary.task])) * 1e3
        finite = np.isfinite(curve)
        ax.plot(np.arange(1, len(curve) + 1)[finite], curve[finite], label=summary.task, linewidth=1)
    ax.set_yscale("log")
    ax.set_xlabel("trials of the task")
    ax.set_ylabel("best latency (ms)")
    shown = min(len(summaries), CURVES_SHOWN)
    ax.set_title(f"best latency vs trials ({shown} of {len(summaries)} tasks)")
    ax.legend(fontsize=6, ncol=2)
    save(fig, path)


def plot_model(trials: list[Trial], rounds: list[dict], path: str) -> None:
    """Left: every measured program the model scored, its score against its measured throughput
    relative to the best of its task (1 = the task's best). Right: rank correlation per round."""
    plt = pyplot()
    best = {}
    for t in trials:
        best[t.task] = min(best.get(t.task, math.inf), t.median_s)
    scored = [(t.meta["score"], best[t.task] / t.median_s, t.round) for t in trials
              if t.ok and isinstance(t.meta.get("score"), float) and np.isfinite(t.meta["score"])]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    if scored:
        score, throughput, round_index = map(np.array, zip(*scored))
        points = left.scatter(score, throughput, c=round_index, s=6, cmap="viridis")
        fig.colorbar(points, ax=left, label="round")
    left.set_xlabel("predicted score")
    left.set_ylabel("measured throughput / task's best")
    left.set_title(f"predicted vs measured ({len(scored)} programs)")
    correlations = [(i, r["rank_correlation"]) for i, r in enumerate(rounds)
                    if r.get("rank_correlation") is not None and np.isfinite(r["rank_correlation"])]
    if correlations:
        right.plot(*zip(*correlations), ".", markersize=4)
    right.axhline(0, color="grey", linewidth=0.5)
    right.set_xlabel("round (all tasks, in order)")
    right.set_ylabel("rank correlation")
    right.set_title("predicted vs measured rank, per round")
    save(fig, path)


def plot_time(rounds: list[dict], path: str) -> None:
    plt = pyplot()
    splits = [round_split(r) for r in rounds]
    phases = [p for p in dict.fromkeys(k for s in splits for k in s)]
    fig, ax = plt.subplots(figsize=(9, 4))
    bottom = np.zeros(len(splits))
    for phase in phases:
        seconds = np.array([s.get(phase, 0.0) for s in splits])
        ax.bar(np.arange(len(splits)), seconds, bottom=bottom, width=1.0, label=phase)
        bottom += seconds
    ax.set_xlabel("round (all tasks, in order)")
    ax.set_ylabel("seconds")
    ax.set_title("time split per round")
    ax.legend(fontsize=8)
    save(fig, path)


def config_line(config: SearchConfig | None) -> str:
    """The run's config as its report states it: the fields it set other than the defaults."""
    if config is None:
        return "Config: not recorded (these records predate config.json)."
    changed = SearchConfig().differences(config)
    return (f"Config {config.fingerprint()}: "
            + ("the defaults." if not changed else "the defaults but " + "; ".join(changed) + "."))


def markdown(work_dir: str, summaries: list[TaskSummary], rounds: list[dict], skipped: int,
             plots: dict[str, str], config: SearchConfig | None = None,
             origins: dict[str, tuple[int, int]] | None = None) -> str:
    totals: dict[str, float] = {}
    for r in rounds:
        for phase, seconds in round_split(r).items():
            totals[phase] = totals.get(phase, 0.0) + seconds
    whole = sum(totals.values())
    lines = [f"# Tuning report: `{work_dir}`", "",
             f"{sum(s.trials for s in summaries)} trials of {len(summaries)} task(s) in {len(rounds)} rounds"
             + (f"; {skipped} unreadable line(s) of {TRIALS_FILE} skipped" if skipped else "") + ".", "",
             config_line(config), "",
             "| task | trials | failed | rounds | best ms | best found at trial | rank correlation (median) "
             "| valid rate |", "|---|---|---|---|---|---|---|---|"]
    for s in summaries:
        lines.append(f"| {s.task} | {s.trials} | {s.failed} | {s.rounds} | {s.best_ms:.4f} | {s.first_best_at} | "
                     f"{s.rank_correlation:.2f} | {s.valid_rate:.1%} |")
    lines += ["", "Time split of all rounds:", "", "| phase | seconds | share |", "|---|---|---|"]
    lines += [f"| {phase} | {seconds:.1f} | {seconds / whole:.1%} |" for phase, seconds in totals.items() if whole]
    if origins:
        lines += ["", "Where the trials and each task's best came from (`transfer`: lent by another task; "
                      "`local`: coordinate descent around the best):", "",
                  *markdown_table(["origin", "trials", "task bests"],
                                  [[kind, trials, bests] for kind, (trials, bests) in origins.items()])]
    lines += [""] + [f"![{name}]({os.path.basename(path)})" for name, path in plots.items()]
    return "\n".join(lines) + "\n"


def origin_kind(trial: Trial) -> str:
    """random, copy, mutate, crossover, refine, transfer, local (the origin before its first colon)."""
    return str(trial.meta.get("origin", "unknown")).split(":", 1)[0]


def origin_counts(trials: list[Trial]) -> dict[str, tuple[int, int]]:
    """Per origin kind: (trials, tasks whose best trial has it)."""
    counts: dict[str, list[int]] = {}
    best: dict[str, Trial] = {}
    for t in trials:
        counts.setdefault(origin_kind(t), [0, 0])[0] += 1
        if t.ok and (t.task not in best or t.median_s < best[t.task].median_s):
            best[t.task] = t
    for t in best.values():
        counts[origin_kind(t)][1] += 1
    return {kind: (n, b) for kind, (n, b) in sorted(counts.items(), key=lambda kv: -kv[1][0])}


def write_report(work_dir: str) -> tuple[str, list[TaskSummary]]:
    """Plots and report.md in `work_dir`; returns (the markdown path, per-task summaries)."""
    store, trials = read_records(work_dir)
    rounds = store.load_rounds()
    summaries = summarize(trials, rounds)
    plots = {"best latency vs trials": os.path.join(work_dir, "report-curve.png"),
             "predicted vs measured": os.path.join(work_dir, "report-model.png"),
             "time split per round": os.path.join(work_dir, "report-time.png")}
    plot_curves(trials, summaries, plots["best latency vs trials"])
    plot_model(trials, rounds, plots["predicted vs measured"])
    plot_time(rounds, plots["time split per round"])
    path = os.path.join(work_dir, "report.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write(markdown(work_dir, summaries, rounds, store.skipped_lines, plots, store.load_config(),
                         origin_counts(trials)))
    return path, summaries
