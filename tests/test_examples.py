"""Every recipe under examples/ runs at a tiny budget, so that none of them rots, and the
walkthrough names only functions that exist."""

import glob
import importlib
import os
import re
import sys

import numpy as np
import pytest

from helpers import run_in_own_process
from minansor.config import SearchConfig
from minansor.records import RecordStore
from minansor.search.mutate import MUTATORS
from minansor.space.search_space import SearchSpace
from minansor.space.steps import InvalidProgram
from minansor.tasks.workloads import make_task

pytestmark = pytest.mark.slow  # end-to-end runs: make test-fast leaves them out

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "examples"))

TINY = ["--set", "trials_per_round=8", "--set", "repeat=1", "--set", "min_repeat_ms=1", "--set", "model_min_samples=8",
        "--set", "population=24", "--set", "min_fresh_random=8"]


def _recipe(name: str):
    return importlib.import_module(name)


def test_add_sketch_rule_adds_sketches_the_search_uses(tmp_path, capsys):
    recipe = _recipe("add_sketch_rule")
    assert recipe.main(["--workload", "gemm-32x32x32", "--trials", "8", "--work-dir", str(tmp_path)] + TINY) == 0
    out = capsys.readouterr().out
    default, extended = (int(n) for n in re.findall(r": (\d+) sketches", out))
    assert extended > default and "multi-level tile C as SRS" in out and "FAILED" not in out
    # evolution reaches the new sketches too: every mutator on their programs (whose one-level
    # reduction tile has nothing to mutate) gives none, a program that replays, or one replay
    # rejects as invalid (as evolution does), never another error
    space = SearchSpace(make_task("gemm-32x32x32"), recipe.with_shallow_tiling(SearchConfig()))
    shallow = [i for i, sketch in enumerate(space.sketches) if "multi-level tile C as SRS" in sketch.describe()]
    rng = np.random.default_rng(0)
    mutated = 0
    for index in shallow:
        parent = next(a for a in (space.random(rng, index) for _ in range(20)) if a is not None)
        for name in MUTATORS:
            for _ in range(10):
                child = MUTATORS[name](parent.program, parent.knobs, rng)
                if child is None:
                    continue
                try:
                    assert space.apply(child).program == child
                    mutated += 1
                except InvalidProgram:
                    pass
    assert shallow and mutated > 0


def test_add_mutator_is_ablated_against_the_default(tmp_path, capsys):
    recipe = _recipe("add_mutator")
    assert recipe.main(["--workload", "gemm-32x32x32", "--pool-trials", "16", "--budgets", "8,16", "--seeds", "0",
                        "--work-dir", str(tmp_path), "--results", str(tmp_path / "results"), "--no-progress"]
                       + TINY) == 0
    out = capsys.readouterr().out
    assert "swap_tile_levels:0.200" in out and "with swaps" in out and "REPLAY" in out
    assert os.path.exists(tmp_path / "results" / "ablate-mutator-gemm-32x32x32.md")


def test_swap_mutator_keeps_the_tile_product():
    import numpy as np

    from minansor.config import SearchConfig
    from minansor.space.search_space import SearchSpace
    from minansor.tasks.workloads import make_task

    recipe = _recipe("add_mutator")
    space = SearchSpace(make_task("gemm-64x64x64"), SearchConfig())
    rng = np.random.default_rng(0)
    children = 0
    for _ in range(20):
        applied = space.random(rng)
        child = recipe.swap_tile_levels(applied.program, applied.knobs, rng)
        if child is None:
            continue
        children += 1
        for knob in applied.knobs:
            if knob.is_tile:
                assert np.prod(child.as_dict()[knob.name]) == knob.extent
        assert space.apply(child) is not None
    assert children > 5


def test_custom_cost_model_is_selected_by_name(tmp_path, capsys):
    recipe = _recipe("custom_cost_model")
    assert recipe.main(["--workload", "gemm-32x32x32", "--trials", "16", "--work-dir", str(tmp_path)] + TINY) == 0
    out = capsys.readouterr().out
    assert "sklearn-gbr" in out and out.count("check ok") == 2
    from minansor.config import SearchConfig
    from minansor.validation import with_overrides

    assert with_overrides(SearchConfig(), ["cost_model=sklearn-gbr"]).cost_model == "sklearn-gbr"


def test_added_feature_reaches_the_model(tmp_path, capsys):
    recipe = _recipe("add_feature")
    from minansor.config import SearchConfig
    from minansor.model.features import FEATURE_NAMES
    from minansor.space.search_space import SearchSpace
    from minansor.tasks.workloads import make_task
    import numpy as np

    task = make_task("gemm-32x32x32")
    applied = SearchSpace(task, SearchConfig()).random(np.random.default_rng(0))
    assert recipe.with_loop_count(task)(applied).shape[1] == len(FEATURE_NAMES) + 1
    assert recipe.main(["--workload", "gemm-32x32x32", "--trials", "16", "--seeds", "0", "--work-dir", str(tmp_path)]
                       + TINY) == 0
    out = capsys.readouterr().out
    assert "minansor+loops" in out and "median rank correlation" in out and "REPLAY" in out


def test_metaschedule_builds_from_our_records(tmp_path, capsys):
    recipe = _recipe("metaschedule_records")
    assert recipe.main(["--workload", "conv-8x8-8-16-3x3", "--trials", "8", "--work-dir", str(tmp_path)] + TINY) == 0
    out = capsys.readouterr().out
    assert "MetaSchedule reads 8 records" in out and "max abs error vs the untuned program" in out
    assert "constants it packs: weight (16, 8, 3, 3) -> (" in out  # a rewritten layout, replayed by MetaSchedule


def test_warm_start_from_metaschedule_trains_the_model_before_the_first_round(tmp_path, capsys):
    out = run_in_own_process(os.path.join(ROOT, "examples", "warm_start_from_metaschedule.py"),
                             ["--workload", "gemm-32x32x32", "--trials", "16", "--work-dir", str(tmp_path)] + TINY)
    assert "MetaSchedule measured 16 programs" in out and "minansor warm" in out
    cold, warm = (RecordStore(str(tmp_path / label)).load_rounds()[0] for label in ("cold", "warm"))
    assert cold["population"] == 8  # random sampling: no model yet
    assert warm["population"] == 24  # evolved under the model trained on MetaSchedule's programs


def test_walkthrough_prints_every_stage_and_names_real_functions(tmp_path):
    recipe = _recipe("walkthrough")
    out = tmp_path / "walkthrough.md"
    assert recipe.main(["--workload", "gemm-32x32x32", "--rounds", "2", "--out", str(out), "--work-dir",
                        str(tmp_path / "work")] + TINY) == 0
    text = out.read_text()
    for title in ("1. The task", "2. Sketches", "3. Random annotation", "4. Features", "5. Evolution", "6. A round",
                  "7. The best program"):
        assert f"## {title}" in text
    assert "check: ok" in text and '"round": 1' in text
    named = set(re.findall(r"`([a-z_]+)\.([A-Za-z_][\w.]*)`", text))
    assert len(named) > 15
    for module, path in named:
        if path in ("py", "jsonl"):  # file names
            continue
        found = importlib.import_module(f"minansor.{module}")
        for part in path.split("."):
            found = getattr(found, part)  # AttributeError names what the page got wrong


GUIDE = sorted(glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True)) + [os.path.join(ROOT, "README.md")]


@pytest.mark.parametrize("page", GUIDE, ids=lambda path: os.path.relpath(path, ROOT))
def test_the_guide_links_resolve(page):
    """Every relative link names a file that exists, and every #anchor a heading of its page."""
    text = open(page).read()
    for link in re.findall(r"\]\(([^)\s]+)\)", text):
        if link.startswith("http"):
            continue
        path, _, anchor = link.partition("#")
        target = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
        assert os.path.exists(target), link
        if anchor:
            assert anchor in heading_anchors(open(target).read()), f"{link}: no such heading"


def heading_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#+\s+(.+?)\s*$", markdown, flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def test_the_anchor_check_follows_the_github_rules():
    anchors = heading_anchors("# The main job: the study's speedup table\n## Int8 with VNNI dot products\n")
    assert anchors == {"the-main-job-the-studys-speedup-table", "int8-with-vnni-dot-products"}
