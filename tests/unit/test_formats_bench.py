"""bench/formats.py scores what it says it scores (on a two-line dataset made here)."""

from __future__ import annotations

from pathlib import Path

from bench.formats import report, score_dataset


def test_scores_message_level_time_and_anomaly_recall(tmp_path: Path) -> None:
    folder = tmp_path / "Tiny"
    folder.mkdir()
    (folder / "Tiny_2k.log").write_text(
        "KERNDTLB 1117869872 2005.06.04 n1 2005-06-04-00.24.32.432192 n1 RAS KERNEL FATAL data TLB error\n"
        "- 1117869873 2005.06.04 n1 2005-06-04-00.24.33.000000 n1 RAS KERNEL INFO all good\n",
        encoding="utf-8",
    )
    (folder / "Tiny_2k.log_structured_corrected.csv").write_text(
        "LineId,Label,Time,Level,Content,EventTemplate\n"
        "1,KERNDTLB,2005-06-04-00.24.32.432192,FATAL,data TLB error,data TLB error\n"
        "2,-,2005-06-04-00.24.33.000000,INFO,all bad,all bad\n",
        encoding="utf-8",
    )
    score = score_dataset(folder)
    assert score is not None
    assert (score.lines, score.message_ok, score.level_scored, score.level_ok) == (2, 1, 2, 2)
    assert score.time_ok == 2
    assert (score.anomalies, score.anomalies_kept) == (1, 1)
    text = "\n".join(report([score]))
    assert "Tiny" in text
    assert "MISSED: Tiny message 0.500 < 0.95" in text
