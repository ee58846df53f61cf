"""Build ``bench/data/retrieval_calibration.jsonl``: the labelled set the retrieval floor is fitted on.

Run from the repository root (the Loghub-2k samples are not part of the repository)::

    .venv/bin/python -m bench.calibration_set --loghub /path/to/loghub-2k

Mostly **negatives**: one real line per distinct non-INFO event template of four public
Loghub systems (HDFS, Hadoop, ZooKeeper, BGL) that the knowledge base was not written for
and that no entry covers. Lines that might honestly match a generic runbook (a refused or
timed-out connection, a full disk, out of memory, ...) are left out rather than guessed.
The positives are the held-out queries of ``bench/data/retrieval_queries.jsonl``.

The evaluation set (``bench/data/analysis_eval.jsonl``) uses other systems (Linux, Apache,
OpenSSH, hand-written formats), so the floor is never judged on the data it was fitted on.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "data" / "retrieval_calibration.jsonl"
QUERIES = ROOT / "bench" / "data" / "retrieval_queries.jsonl"
SYSTEMS = ("HDFS", "Hadoop", "Zookeeper", "BGL")
_MAYBE_COVERED = re.compile(
    r"refused|timed? ?out|no space|outofmemory|out of memory|too many open|unknownhost|no route to host|"
    r"certificate|ssl|deadlock|disk",
    re.IGNORECASE,
)


def loghub_negatives(loghub: Path) -> list[dict[str, object]]:
    cases: list[dict[str, object]] = []
    for system in SYSTEMS:
        path = loghub / system / f"{system}_2k.log_structured_corrected.csv"
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
        seen: set[str] = set()
        for row in rows:
            if row["Level"].upper() == "INFO" or row["EventTemplate"] in seen:
                continue
            seen.add(row["EventTemplate"])
            if _MAYBE_COVERED.search(row["Content"]):
                continue
            cases.append(
                {
                    "id": f"{system.lower()}-{row['EventId']}",
                    "origin": f"loghub:{system}",
                    "service": (row.get("Component") or system).split("$")[0][-60:] or system,
                    "message": row["Content"],
                    "relevant": [],
                }
            )
    return cases


def positives() -> list[dict[str, object]]:
    cases: list[dict[str, object]] = []
    for line in QUERIES.read_text(encoding="utf-8").splitlines():
        query = json.loads(line)
        if not query["expected"]:
            continue  # its ten negatives were written with the knowledge base in view: not used
        cases.append(
            {
                "id": f"query-{query['id']}",
                "origin": "retrieval_queries",
                "service": "unknown",
                "message": query["query"],
                "relevant": [query["expected"], *query.get("also_relevant", [])],
            }
        )
    return cases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.calibration_set", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--loghub", type=Path, required=True, help="folder with <System>/<System>_2k.log_*.csv"
    )
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    cases = loghub_negatives(args.loghub) + positives()
    args.out.write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in cases), encoding="utf-8")
    negatives = sum(1 for c in cases if not c["relevant"])
    print(f"{len(cases)} cases ({negatives} negatives, {len(cases) - negatives} positives) -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
