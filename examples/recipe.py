"""What every recipe's command line shares: the workload, the budget, the work dir and
SearchConfig overrides (`--set`, as on the `minansor` command)."""

from __future__ import annotations

import argparse

from minansor.config import SearchConfig
from minansor.validation import with_overrides


def parser(doc: str, work_dir: str, trials: int = 64) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workload", default="yolo-conv-26x26-128-128-3x3", help="a catalogue workload")
    p.add_argument("--trials", type=int, default=trials, help=f"trials per tuning run (default {trials})")
    p.add_argument("--work-dir", default=work_dir, help=f"records (default {work_dir})")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="override a SearchConfig field")
    return p


def config(args: argparse.Namespace) -> SearchConfig:
    return with_overrides(SearchConfig(), args.set)
