"""The retrieval half of ``make bench-analysis`` (no model): the analyzer's own retrieval path
(local MiniLM, Milvus Lite, the relevance check) on the labelled evaluation set."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.analysis import EVAL, KB, load_cases, retrieve_candidates, score_retrieval
from cali.knowledge.base import load_knowledge_base
from cali.knowledge.relevance import RelevancePolicy

pytestmark = pytest.mark.xdist_group("milvus_lite")


def test_retrieval_shows_no_unrelated_runbook_and_abstains_on_incidents_it_does_not_cover(
    tmp_path: Path,
) -> None:
    entries = load_knowledge_base(KB)
    cases = load_cases(EVAL, {entry.id for entry in entries})
    assert len(cases) >= 40
    items, stats = retrieve_candidates(cases, entries, tmp_path)

    score, _ = score_retrieval(items, RelevancePolicy(), stats)
    cosine_only, _ = score_retrieval(items, None, stats)

    assert score.negatives >= 20
    # The targets, with the policy fitted on the separate calibration set.
    assert score.unrelated_share <= 0.05
    assert score.top3 >= 0.9
    assert score.abstention >= 0.9
    assert cosine_only.unrelated_share > 0.5  # what the check is for: the old floor alone
