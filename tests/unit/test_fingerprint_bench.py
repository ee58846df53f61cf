"""The fingerprint benchmark computes GA and FGA as the Loghub README defines them."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from bench import fingerprint as bench


def test_grouping_accuracy_counts_lines_of_exactly_right_groups() -> None:
    truth = ["A", "A", "B", "C"]
    predicted = [1, 1, 2, 2]  # {0,1} is exactly group A; {2,3} merges B and C
    ga, fga, groups, true_groups = bench.accuracy(predicted, truth)
    assert ga == pytest.approx(0.5)
    precision, recall = 1 / 2, 1 / 3
    assert fga == pytest.approx(2 * precision * recall / (precision + recall))
    assert (groups, true_groups) == (2, 3)


def test_perfect_and_split_groupings() -> None:
    assert bench.accuracy(["x", "x", "y"], ["A", "A", "B"])[:2] == (1.0, 1.0)
    # Splitting a true group makes all of its lines wrong.
    ga, fga, _, _ = bench.accuracy(["x", "z", "y"], ["A", "A", "B"])
    assert ga == pytest.approx(1 / 3)
    assert fga == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))
    assert bench.accuracy(["x", "x"], ["A", "B"])[:2] == (0.0, 0.0)


def write_dataset(root: Path, name: str, rows: list[tuple[str, str]]) -> None:
    folder = root / name
    folder.mkdir(parents=True)
    with (folder / f"{name}_2k.log_structured_corrected.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["LineId", "Content", "EventId", "EventTemplate"])
        for index, (content, template) in enumerate(rows, 1):
            writer.writerow([index, content, "E", template])


def test_benchmark_runs_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("drain3")
    template = "Connection to <*> timed out after <*> ms"
    rows = [(f"Connection to 10.0.0.{n} timed out after {n * 10} ms", template) for n in range(1, 6)]
    rows += [(f"disk full on /dev/sd{c}", "disk full on <*>") for c in "abc"]
    write_dataset(tmp_path, "Tiny", rows)
    out_json = tmp_path / "scores.json"
    assert bench.main(["--data", str(tmp_path), "--datasets", "Tiny", "--json", str(out_json)]) == 0
    printed = capsys.readouterr().out
    assert "Tiny       cali     1.000  1.000" in printed
    assert "speed ratio cali/drain3" in printed
    scores = json.loads(out_json.read_text(encoding="utf-8"))
    assert {s["method"] for s in scores["scores"]} == {"cali", "drain3"}
    assert scores["averages"]["cali"]["ga"] == 1.0
    assert all(s["lines_per_s"] > 0 for s in scores["scores"])


def test_benchmark_rejects_unknown_dataset(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        bench.main(["--data", str(tmp_path), "--datasets", "Nope", "--no-drain3"])


def test_default_data_folder_is_next_to_the_repository() -> None:
    expected = Path(__file__).resolve().parents[3] / "shared" / "data" / "loghub-2k"
    assert expected == bench.DEFAULT_DATA
