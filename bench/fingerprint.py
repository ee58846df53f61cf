"""Grouping accuracy and speed of CALI's fingerprint against drain3, on Loghub-2k.

Run from the repository root::

    .venv/bin/python -m bench.fingerprint                 # all eight datasets
    .venv/bin/python -m bench.fingerprint --datasets HDFS,Spark --json out.json
    .venv/bin/python -m bench.fingerprint --show-errors 5  # worst mis-grouped templates
    .venv/bin/python -m bench.fingerprint --ablation       # + CALI without the "user" rule

For every dataset the ``Content`` column of ``<S>_2k.log_structured_corrected.csv`` is
grouped by each method and compared with the ``EventTemplate`` ground truth, with the
metrics of the dataset README (Zhu et al. 2019): grouping accuracy (GA: share of lines
whose predicted group is exactly their true group) and FGA (F1 over groups), plus the
lines per second of the grouping call alone (one thread, best of three runs; a fresh
drain3 miner each run since it learns). Time is the process CPU time of the call, i.e.
lines per second *per core*: on a shared, loaded machine wall-clock time also counts
the time other processes held the core, CPU time does not. Both methods use one generic configuration for
all datasets.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from cali.fingerprint import Fingerprinter

DATASETS: tuple[str, ...] = ("HDFS", "Hadoop", "Spark", "Zookeeper", "BGL", "Linux", "Apache", "OpenSSH")
DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "loghub-2k"
RUNS = 3

# The generic masking instructions of drain3's own example configuration
# (examples/drain3.ini), minus its one rule keyed on a specific log ("executed cmd").
DRAIN3_MASKING: tuple[tuple[str, str], ...] = (
    (r"((?<=[^A-Za-z0-9])|^)(([0-9a-f]{2,}:){3,}([0-9a-f]{2,}))((?=[^A-Za-z0-9])|$)", "ID"),
    (r"((?<=[^A-Za-z0-9])|^)(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})((?=[^A-Za-z0-9])|$)", "IP"),
    (r"((?<=[^A-Za-z0-9])|^)([0-9a-f]{6,} ?){3,}((?=[^A-Za-z0-9])|$)", "SEQ"),
    (r"((?<=[^A-Za-z0-9])|^)([0-9A-F]{4} ?){4,}((?=[^A-Za-z0-9])|$)", "SEQ"),
    (r"((?<=[^A-Za-z0-9])|^)(0x[a-f0-9A-F]+)((?=[^A-Za-z0-9])|$)", "HEX"),
    (r"((?<=[^A-Za-z0-9])|^)([\-\+]?\d+)((?=[^A-Za-z0-9])|$)", "NUM"),
)

Grouper = Callable[[Sequence[str]], list[Hashable]]


@dataclass(frozen=True)
class Score:
    dataset: str
    method: str
    lines: int
    groups: int
    true_groups: int
    ga: float
    fga: float
    lines_per_s: float


def load(data: Path, dataset: str) -> tuple[list[str], list[str]]:
    path = data / dataset / f"{dataset}_2k.log_structured_corrected.csv"
    with path.open(newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    return [row["Content"] for row in rows], [row["EventTemplate"] for row in rows]


def cali_grouper(*, mask_user_names: bool = True) -> Grouper:
    def group(lines: Sequence[str]) -> list[Hashable]:
        fingerprint = Fingerprinter(mask_user_names=mask_user_names).fingerprint
        return [fingerprint(line).id for line in lines]

    return group


def drain3_grouper() -> Grouper:
    from drain3 import TemplateMiner
    from drain3.masking import MaskingInstruction
    from drain3.template_miner_config import TemplateMinerConfig

    def group(lines: Sequence[str]) -> list[Hashable]:
        config = TemplateMinerConfig()
        config.masking_instructions = [MaskingInstruction(p, m) for p, m in DRAIN3_MASKING]
        add = TemplateMiner(config=config).add_log_message
        return [add(line)["cluster_id"] for line in lines]

    return group


def accuracy(predicted: Sequence[Hashable], truth: Sequence[str]) -> tuple[float, float, int, int]:
    """GA, FGA, number of predicted groups and of true groups."""
    pred_groups: dict[Hashable, list[int]] = defaultdict(list)
    true_groups: dict[str, list[int]] = defaultdict(list)
    for index, (pred, true) in enumerate(zip(predicted, truth, strict=True)):
        pred_groups[pred].append(index)
        true_groups[true].append(index)
    true_sets = {frozenset(members) for members in true_groups.values()}
    correct_lines = 0
    correct_groups = 0
    for members in pred_groups.values():
        if frozenset(members) in true_sets:
            correct_groups += 1
            correct_lines += len(members)
    ga = correct_lines / len(truth)
    precision = correct_groups / len(pred_groups)
    recall = correct_groups / len(true_groups)
    fga = 0.0 if correct_groups == 0 else 2 * precision * recall / (precision + recall)
    return ga, fga, len(pred_groups), len(true_groups)


def measure(dataset: str, method: str, grouper: Grouper, lines: list[str], truth: list[str]) -> Score:
    best = float("inf")
    predicted: list[Hashable] = []
    for _ in range(RUNS):
        start = time.process_time()
        predicted = grouper(lines)
        best = min(best, time.process_time() - start)
    ga, fga, groups, true_groups = accuracy(predicted, truth)
    return Score(dataset, method, len(lines), groups, true_groups, ga, fga, len(lines) / best)


def show_errors(dataset: str, lines: list[str], truth: list[str], limit: int) -> None:
    """The true templates CALI splits or merges, largest first (for error analysis)."""
    fingerprinter = Fingerprinter()
    results = [fingerprinter.fingerprint(line) for line in lines]
    by_true: dict[str, set[str]] = defaultdict(set)
    by_pred: dict[str, set[str]] = defaultdict(set)
    sizes: dict[str, int] = defaultdict(int)
    for result, true in zip(results, truth, strict=True):
        by_true[true].add(result.template)
        by_pred[result.template].add(true)
        sizes[true] += 1
    wrong = [t for t in by_true if len(by_true[t]) > 1 or any(len(by_pred[p]) > 1 for p in by_true[t])]
    wrong.sort(key=lambda t: -sizes[t])
    for true in wrong[:limit]:
        print(f"  [{dataset}] {sizes[true]} lines, truth: {true}")
        for template in sorted(by_true[true])[:4]:
            others = len(by_pred[template]) - 1
            merged = f"  (merged with {others} more)" if others else ""
            print(f"      -> {template}{merged}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fingerprint",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help=f"Loghub-2k folder (default: {DEFAULT_DATA})"
    )
    parser.add_argument(
        "--datasets", default=",".join(DATASETS), help="comma-separated subset (default: all eight)"
    )
    parser.add_argument(
        "--json", type=Path, default=None, metavar="FILE", help="also write every score to FILE as JSON"
    )
    parser.add_argument("--no-drain3", action="store_true", help="skip the drain3 baseline")
    parser.add_argument(
        "--ablation",
        action="store_true",
        help="also run CALI without its one lexical rule (the word after 'user')",
    )
    parser.add_argument(
        "--show-errors",
        type=int,
        default=0,
        metavar="N",
        help="print the N largest true templates CALI groups wrongly per dataset",
    )
    args = parser.parse_args(argv)

    datasets = [name.strip() for name in args.datasets.split(",") if name.strip()]
    unknown = [name for name in datasets if not (args.data / name).is_dir()]
    if unknown:
        parser.error(f"no such dataset folder under {args.data}: {', '.join(unknown)}")
    methods: list[tuple[str, Grouper]] = [("cali", cali_grouper())]
    if args.ablation:
        methods.append(("cali-nu", cali_grouper(mask_user_names=False)))
    if not args.no_drain3:
        methods.append(("drain3", drain3_grouper()))

    scores: list[Score] = []
    header = f"{'dataset':<10} {'method':<7} {'GA':>6} {'FGA':>6} {'groups':>7} {'true':>5} {'lines/s':>10}"
    print(header)
    print("-" * len(header))
    for dataset in datasets:
        lines, truth = load(args.data, dataset)
        for method, grouper in methods:
            score = measure(dataset, method, grouper, lines, truth)
            scores.append(score)
            print(
                f"{dataset:<10} {method:<7} {score.ga:6.3f} {score.fga:6.3f} {score.groups:7d} "
                f"{score.true_groups:5d} {score.lines_per_s:10,.0f}",
                flush=True,
            )
        if args.show_errors:
            show_errors(dataset, lines, truth, args.show_errors)
    print("-" * len(header))
    averages: dict[str, dict[str, float]] = {}
    for method, _ in methods:
        mine = [s for s in scores if s.method == method]
        averages[method] = {
            "ga": sum(s.ga for s in mine) / len(mine),
            "fga": sum(s.fga for s in mine) / len(mine),
            "lines_per_s": sum(s.lines_per_s for s in mine) / len(mine),
        }
        avg = averages[method]
        print(
            f"{'average':<10} {method:<7} {avg['ga']:6.3f} {avg['fga']:6.3f} {'':7} {'':5} "
            f"{avg['lines_per_s']:10,.0f}"
        )
    if "drain3" in averages:
        ratio = averages["cali"]["lines_per_s"] / averages["drain3"]["lines_per_s"]
        print(f"\nspeed ratio cali/drain3 (mean lines/s): {ratio:.1f}x")
    if args.json:
        args.json.write_text(
            json.dumps({"scores": [asdict(s) for s in scores], "averages": averages}, indent=2) + "\n",
            encoding="utf-8",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
