"""Seeing through the search: the per-round trace, `minansor report`, `minansor explain`, the
replay runner and the ablation script."""

import dataclasses
import json
import os
import sys

import pytest

from minansor.cli import main
from minansor.errors import UserError
from minansor.measure.measurer import MeasureResult
from minansor.measure.replay import ReplayMeasurer, decision_distance
from minansor.records import RecordStore, replay_from
from minansor.search.trace import PHASES, Stopwatch
from minansor.space.program import Program
from minansor.tasks.workloads import make_task
from minansor.tune import tune_task

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "experiments"))

import ablate  # noqa: E402
import lineage  # noqa: E402


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """A short real evolutionary tune: the model trains after the first round, so later rounds
    evolve (mutations, crossovers) and their programs have lineages."""
    work = str(tmp_path_factory.mktemp("tuned"))
    config = dict(trials_per_round=8, population=24, generations=2, min_fresh_random=8, model_min_samples=8,
                  crossover_probability=0.3, mutation_probability=0.6, repeat=1, min_repeat_ms=1)
    args = [f"--set={k}={v}" for k, v in config.items()]
    assert main(["tune-op", "gemm-32x32x32", "--trials", "32", "--work-dir", work, "--no-progress"] + args) == 0
    return work, args


def test_stopwatch_phases_are_exclusive():
    now = [0.0]
    clock = Stopwatch(lambda: now[0])
    with clock.phase("model"):
        now[0] += 2.0
        with clock.phase("features"):
            now[0] += 5.0
        now[0] += 1.0
    now[0] += 100.0  # outside every phase: charged to none
    assert clock.take() == {"model": 3.0, "features": 5.0}
    assert clock.take() == {}


def test_every_round_records_population_validity_correlation_and_time_split(tuned):
    work, _ = tuned
    rounds = RecordStore(work).load_rounds()
    assert [r["round"] for r in rounds] == [0, 1, 2, 3] and [r["trials"] for r in rounds] == [8, 16, 24, 32]
    for r in rounds:
        assert set(r["split_s"]) == set(PHASES) and r["split_s"]["build"] > 0 and r["split_s"]["run"] > 0
        assert 0 < r["valid_rate"] <= 1 and r["population"] >= 8 and r["unique_programs"] >= 8
        assert r["best_ms"] > 0
    evolved = rounds[1:]  # the model is trained from the second round on
    assert all(r["population"] == 24 and r["split_s"]["evolution"] > 0 and r["split_s"]["features"] > 0
               for r in evolved)
    # undefined (nan) when a round's predictions or measurements happen to tie throughout
    defined = [r["rank_correlation"] for r in evolved if r["rank_correlation"] == r["rank_correlation"]]
    assert defined and all(-1 <= rho <= 1 for rho in defined)


def test_report_writes_three_plots_and_a_summary(tuned, capsys):
    work, _ = tuned
    assert main(["report", work]) == 0
    assert "gemm-32x32x32" in capsys.readouterr().out
    for name in ("report-curve.png", "report-model.png", "report-time.png"):
        assert os.path.getsize(os.path.join(work, name)) > 1000
    text = open(os.path.join(work, "report.md")).read()
    assert "| gemm-32x32x32 | 32 | 0 | 4 |" in text and "| evolution |" in text
    origins = text.split("Where the trials and each task's best came from")[1]
    rows = [line.split("|")[1:4] for line in origins.splitlines() if line.startswith("| ") and "origin" not in line]
    assert sum(int(trials) for _, trials, _ in rows) == 32 and sum(int(bests) for _, _, bests in rows) == 1


def test_explain_shows_decisions_lineage_back_to_random_and_the_checked_program(tuned, capsys):
    work, args = tuned
    assert main(["explain", work] + args) == 0
    out = capsys.readouterr().out
    best = min((t for t in RecordStore(work).load() if t.ok), key=lambda t: t.median_s)
    assert f"best: trial #{best.index} of round {best.round}" in out
    assert "check against the untuned program: ok" in out
    for name, value in best.program.decisions:
        assert f"{name} = {value}" in out
    assert "T.prim_func" in out and "multi-level tile" in out
    lineage = out.split("lineage (newest first):")[1].split("program:")[0]
    assert lineage.strip().startswith(f"#{best.index} round {best.round}")
    assert ": random" in lineage or "(unmeasured) random" in lineage  # it goes back to a random program


def test_lineage_links_bred_programs_to_their_measured_parents(tuned):
    trials = RecordStore(tuned[0]).load()
    keys = {t.program.key() for t in trials}
    bred = [t for t in trials if t.meta["origin"].startswith(("mutate", "crossover"))]
    assert bred, "later rounds evolve"
    for trial in bred:
        ancestry = {step["program"]: step for step in trial.meta["ancestry"]}
        parents = trial.meta["parents"] + [p for step in ancestry.values() for p in step["parents"]]
        assert all(p in keys or p in ancestry for p in parents)  # measured, or bred within the round


def test_replay_answers_exactly_then_from_the_nearest_program_of_the_sketch():
    near = Program.make(0, {"tile C.i": (4, 8), "unroll C": 16})
    far = Program.make(0, {"tile C.i": (32, 1), "unroll C": 0})
    other_sketch = Program.make(1, {"tile C.i": (4, 8)})
    asked = Program.make(0, {"tile C.i": (8, 4), "unroll C": 16})
    assert decision_distance(asked, near) == 2.0 and decision_distance(asked, far) == 4.0 + 1
    assert decision_distance(asked, other_sketch) == float("inf")
    recorded = {"t": [(near, MeasureResult((1.0,), None)), (far, MeasureResult((2.0,), None))]}
    replay = ReplayMeasurer(recorded)
    assert replay.answer("t", far).median_s == 2.0 and replay.answer("t", asked).median_s == 1.0
    assert not replay.answer("t", other_sketch).ok
    assert dict(replay.answers) == {"exact": 1, "nearest": 1, "missing": 1}
    assert replay.describe().startswith("REPLAY, not hardware")
    strict = ReplayMeasurer(recorded, fallback="fail")
    assert not strict.answer("t", asked).ok
    with pytest.raises(UserError, match="cannot time a whole network"):  # it runs nothing
        replay.time_network("network.so", [], 1, make_task("gemm-8x8x8").target)


def test_ablation_grid_replays_seeds_and_writes_its_table(tuned, tmp_path, capsys):
    work, _ = tuned
    argv = ["--tasks", "gemm-32x32x32", "--pool", work, "--pool-trials", "32", "--budgets", "8,16", "--seeds", "1,2",
            "--only", "default,random search", "--variant", "pop 12=population=12", "--work-dir", str(tmp_path),
            "--results", str(tmp_path / "results"), "--name", "tiny", "--no-progress",
            "--set", "trials_per_round=8", "--set", "model_min_samples=8", "--set", "population=24"]
    assert ablate.main(argv) == 0
    out = capsys.readouterr().out
    assert "REPLAY, not hardware" in out and "pop 12" in out
    assert len(RecordStore(work).load()) == 32  # the pool was only read
    result = json.load(open(tmp_path / "results" / "ablate-tiny.json"))
    assert set(result["variants"]) == {"default", "random search", "pop 12"}
    assert all(len(runs) == 2 and all(len(r) == 2 and r[1] <= r[0] for r in runs)
               for runs in (v["latency_s"] for v in result["variants"].values()))
    first = open(tmp_path / "results" / "ablate-tiny.md").read()
    assert "REPLAY" in first and " 0 measurements answered" not in first
    assert ablate.main(argv) == 0  # every run resumes from its records: same table, same replay counts
    assert open(tmp_path / "results" / "ablate-tiny.md").read() == first
    assert ablate.main(argv[:-6] + ["--only", "no such variant"]) == 2
    assert "exact answers" in first
    # the pool's own seed (0) among the variants' seeds: it would replay itself
    assert ablate.main([a if a != "1,2" else "0,1" for a in argv]) == 2
    assert "must differ from --seeds" in capsys.readouterr().err


def test_replay_is_deterministic_per_seed(tuned, tmp_path, fast_config):
    task = make_task("gemm-32x32x32")
    config = dataclasses.replace(fast_config, population=24, min_fresh_random=8, model_min_samples=8)
    paths = []
    for run in ("a", "b"):
        replay = replay_from(tuned[0])
        tune_task(task, config, str(tmp_path / run), trials=16, seed=5, progress=False, measurer=replay)
        paths.append([t.program.key() for t in RecordStore(str(tmp_path / run)).load()])
    assert paths[0] == paths[1]


def test_lineage_tells_mutations_of_the_best_from_the_rest(tmp_path, capsys):
    def trial(index, round_, ms, origin="random", parents=()):
        program = Program.make(0, {"unroll C": index})
        return {"task": "t", "index": index, "round": round_, "program": program.to_json(), "sketch_fingerprint": "",
                "latencies_s": [ms * 1e-3], "error": None, "build_s": 0.0, "run_s": 0.0, "search": "evolutionary",
                "seed": 0, "meta": {"origin": origin, "parents": list(parents)}}

    best, worst = Program.make(0, {"unroll C": 0}).key(), Program.make(0, {"unroll C": 1}).key()
    trials = [trial(0, 0, 1.0), trial(1, 0, 3.0),
              trial(2, 1, 1.05, "mutate:unroll", [best]),  # near the best, 1.17x the final best
              trial(3, 1, 0.9, "mutate:unroll", [worst]),  # the final best, but bred from the worst
              trial(4, 1, 5.0, "random")]
    (tmp_path / "trials.jsonl").write_text("".join(json.dumps(t) + "\n" for t in trials))
    assert lineage.main([str(tmp_path), "--top", "1"]) == 0
    rows = {line.split("  ")[0]: line.split() for line in capsys.readouterr().out.splitlines()}
    assert rows["near the best"][3:6] == ["1", "0", "0.0"]  # count, within 10 %, %
    assert rows["elsewhere"][1:4] == ["2", "1", "50.0"] and rows["elsewhere"][-1] == "1"  # the final best
    assert lineage.main([str(tmp_path / "missing")]) == 2
