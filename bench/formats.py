"""How well the line normaliser reads real logs: Loghub-2k, per dataset and averaged.

For every dataset under ``--data`` (``<S>/<S>_2k.log`` + ``<S>_2k.log_structured_corrected.csv``)
each raw line goes through ``cali.ingest.normalise`` exactly as the consumer would see it
and is scored against the hand-made columns:

- message: the parsed message equals the CSV's ``Content`` (surrounding spaces ignored);
- level: accuracy over the lines whose ``Level`` column holds a level word (Linux's holds
  the host name: not scored);
- timestamp: the share of lines with a parsed time whose minutes and seconds equal the
  CSV's time column (a parse that invents a time does not count);
- anomaly recall (datasets with a ``Label`` column, i.e. BGL): the share of labelled anomaly
  lines kept at WARN or above. The label is blanked to ``-`` in the raw line first: real
  logs do not carry it.
- inferred: the share of lines whose level was inferred, and the classifier's precision
  where the truth is known (its WARN/ERROR calls on lines whose own level is WARN or above).

The data is a sample: the same single configuration serves every dataset; nothing here
knows which dataset it is reading.

    make bench-formats            # or: python -m bench.formats --data ../shared/data/loghub-2k
"""

from __future__ import annotations

import argparse
import csv
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cali.contracts.levels import Level
from cali.ingest.normalise import DEFAULT_NORMALISER, level_of_word


def _default_data() -> Path:
    # ../shared/data/loghub-2k next to the repository (or next to any folder above it).
    for folder in Path(__file__).resolve().parents:
        candidate = folder / "shared" / "data" / "loghub-2k"
        if candidate.is_dir():
            return candidate
    return Path("../shared/data/loghub-2k")


DEFAULT_DATA = _default_data()
ARRIVAL = datetime(2026, 12, 1, tzinfo=UTC)
_CLOCK = re.compile(r"(\d{2})[:.](\d{2})[:.](\d{2})")
_HHMMSS = re.compile(r"(?<!\d)(\d{2})(\d{2})(\d{2})(?!\d)")


@dataclass
class Score:
    name: str
    lines: int = 0
    message_ok: int = 0
    level_scored: int = 0
    level_ok: int = 0
    time_ok: int = 0
    anomalies: int = 0
    anomalies_kept: int = 0
    inferred: int = 0
    inferred_checked: int = 0
    inferred_right: int = 0
    judged: int = 0  # inferred lines whose template a person labelled (bench/data)
    judged_wanted: int = 0
    seconds: float = 0.0

    @staticmethod
    def share(part: int, whole: int) -> float | None:
        return part / whole if whole else None


def _minute_second(row: dict[str, str]) -> tuple[str, str] | None:
    text = row.get("Time", "")
    if text.isdigit():  # the CSV stored HHMMSS as a number: 000512 became 512
        text = text.zfill(6)
    match = _CLOCK.search(text) or _HHMMSS.search(text)
    return (match.group(2), match.group(3)) if match else None


def _blank_label(line: str) -> str:
    _label, _, rest = line.partition(" ")
    return f"- {rest}" if rest else line


LABELS = Path(__file__).resolve().parent / "data" / "implied_severity_labels.csv"


def _labels() -> dict[tuple[str, str], bool]:
    """(dataset, template) -> would a person want this inferred WARN/ERROR (hand-labelled)."""
    with LABELS.open(encoding="utf-8", newline="") as handle:
        return {(row["dataset"], row["template"]): row["wanted"] == "yes" for row in csv.DictReader(handle)}


def score_dataset(folder: Path) -> Score | None:
    name = folder.name
    raw_path = folder / f"{name}_2k.log"
    csv_path = folder / f"{name}_2k.log_structured_corrected.csv"
    if not raw_path.exists() or not csv_path.exists():
        return None
    lines = raw_path.read_text(encoding="utf-8", errors="replace").splitlines()
    with csv_path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    labelled = bool(rows) and "Label" in rows[0]
    score = Score(name)
    inputs = [_blank_label(line) if labelled else line for line in lines[: len(rows)]]
    DEFAULT_NORMALISER.warm_up()  # lines/s of the warm normaliser, not of regex compilation
    started = time.perf_counter()
    parsed = [DEFAULT_NORMALISER.parse(line, ARRIVAL) for line in inputs]
    score.seconds = time.perf_counter() - started
    labels = _labels()
    for row, result in zip(rows, parsed, strict=False):
        _score_line(score, row, result, labelled)
        if result.level_source == "inferred":
            wanted = labels.get((name, row.get("EventTemplate", "")))
            if wanted is not None:
                score.judged += 1
                score.judged_wanted += wanted
    return score


def _score_line(score: Score, row: dict[str, str], result: object, labelled: bool) -> None:
    from cali.ingest.normalise import ParsedLine

    assert isinstance(result, ParsedLine)
    score.lines += 1
    score.message_ok += result.message.strip() == row["Content"].strip()
    expected = level_of_word(row.get("Level", "") or "")
    if expected is not None:
        score.level_scored += 1
        score.level_ok += result.level == expected
    clock = _minute_second(row)
    if result.timestamp is not None and clock is not None:
        score.time_ok += (f"{result.timestamp.minute:02d}", f"{result.timestamp.second:02d}") == clock
    if labelled and row["Label"] != "-":
        score.anomalies += 1
        score.anomalies_kept += result.level is not None and result.level >= Level.WARN
    score.inferred += result.level_source == "inferred"
    # Precision of the classifier where the truth is known: pretend the line had no level.
    if expected is not None:
        implied = DEFAULT_NORMALISER.implied.classify(row["Content"])
        if implied is not None:
            score.inferred_checked += 1
            score.inferred_right += expected >= Level.WARN


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


TARGETS = {"message": 0.95, "level": 0.98, "timestamp": 0.98}


def report(scores: list[Score]) -> list[str]:
    header = (
        f"{'dataset':<11} {'lines':>5} {'message':>8} {'level':>8} {'timestamp':>9} "
        f"{'anomaly':>8} {'inferred':>8} {'infer-prec':>10} {'lines/s':>9}"
    )
    out = [header, "-" * len(header)]
    columns: dict[str, list[float]] = {"message": [], "level": [], "timestamp": [], "anomaly": []}
    misses: list[str] = []
    for s in scores:
        values = {
            "message": Score.share(s.message_ok, s.lines),
            "level": Score.share(s.level_ok, s.level_scored),
            "timestamp": Score.share(s.time_ok, s.lines),
            "anomaly": Score.share(s.anomalies_kept, s.anomalies),
        }
        for key, value in values.items():
            if value is not None:
                columns[key].append(value)
            target = TARGETS.get(key)
            if target is not None and value is not None and value < target:
                misses.append(f"{s.name} {key} {value:.3f} < {target}")
        speed = s.lines / s.seconds if s.seconds else 0.0
        out.append(
            f"{s.name:<11} {s.lines:>5} {_fmt(values['message']):>8} {_fmt(values['level']):>8} "
            f"{_fmt(values['timestamp']):>9} {_fmt(values['anomaly']):>8} "
            f"{_fmt(Score.share(s.inferred, s.lines)):>8} "
            f"{_fmt(Score.share(s.inferred_right, s.inferred_checked)):>10} {speed:>9,.0f}"
        )
    average = {key: (sum(v) / len(v) if v else None) for key, v in columns.items()}
    checked = sum(s.inferred_checked for s in scores)
    right = sum(s.inferred_right for s in scores)
    out.append("-" * len(header))
    out.append(
        f"{'average':<11} {sum(s.lines for s in scores):>5} {_fmt(average['message']):>8} "
        f"{_fmt(average['level']):>8} {_fmt(average['timestamp']):>9} {_fmt(average['anomaly']):>8} "
        f"{'':>8} {_fmt(Score.share(right, checked)):>10}"
    )
    out.append("")
    out.append(
        "targets per dataset: message >= 0.95, level >= 0.98, timestamp >= 0.98 -> "
        + ("all met" if not misses else "MISSED: " + "; ".join(misses))
    )
    judged = sum(s.judged for s in scores)
    wanted = sum(s.judged_wanted for s in scores)
    inferred = sum(s.inferred for s in scores)
    out.append(
        f"inferred levels judged by hand (bench/data/implied_severity_labels.csv): {judged} of {inferred} "
        f"inferred lines, {wanted} wanted -> precision {_fmt(Score.share(wanted, judged))}"
    )
    out.append(
        f"infer-prec: of {checked} lines with a known WARN+/INFO level that the classifier would "
        f"flag if they had none, {right} really are WARN or above"
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of Loghub-2k datasets")
    parser.add_argument("--misses", type=int, default=0, help="print up to N mismatched lines per dataset")
    args = parser.parse_args(argv)
    folders = sorted(p for p in args.data.iterdir() if p.is_dir()) if args.data.exists() else []
    scores = [score for folder in folders if (score := score_dataset(folder)) is not None]
    if not scores:
        print(f"no Loghub-2k datasets under {args.data}")
        return 1
    for line in report(scores):
        print(line)
    if args.misses:
        _print_misses(folders, args.misses)
    return 0


def _print_misses(folders: list[Path], limit: int) -> None:
    for folder in folders:
        name = folder.name
        raw = (folder / f"{name}_2k.log").read_text(encoding="utf-8", errors="replace").splitlines()
        with (folder / f"{name}_2k.log_structured_corrected.csv").open(
            encoding="utf-8", newline=""
        ) as handle:
            rows = list(csv.DictReader(handle))
        shown = 0
        for line, row in zip(raw, rows, strict=False):
            text = _blank_label(line) if "Label" in row else line
            result = DEFAULT_NORMALISER.parse(text, ARRIVAL)
            expected = level_of_word(row.get("Level", "") or "")
            bad_level = expected is not None and result.level != expected
            if result.message.strip() != row["Content"].strip() or bad_level or result.timestamp is None:
                print(f"[{name}] {result.format} {result.level} | {line[:150]}")
                print(f"     got: {result.message[:120]!r}\n    want: {row['Content'][:120]!r}")
                shown += 1
                if shown >= limit:
                    break


if __name__ == "__main__":
    raise SystemExit(main())
