"""What the incident analyzer concluded: the contract between analysis and Slack/OpenSearch.

The LLM's structured output is validated into ``LlmAnalysis``; ``AnalysisResult`` wraps it
with how it was obtained. When the LLM cannot be used (no key, timeout, budget spent,
invalid output, Milvus down) ``llm`` is ``None``, ``degraded_reason`` says why and the
alert is built from retrieval alone.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Confidence = Literal["low", "medium", "high"]


class LlmAnalysis(BaseModel):
    """The model's answer, as the prompt asks for it (validated, then checked for grounding)."""

    model_config = ConfigDict(extra="forbid")

    summary: str = Field(max_length=600)
    probable_root_cause: str = Field(max_length=1200)
    confidence: Confidence
    cause_known: bool = Field(
        True, description="False when the logs do not show the cause: the answer reads as 'unknown'"
    )
    model_confidence: Confidence | None = Field(
        None, description="What the model claimed, before it was capped by the answer's support"
    )
    evidence: list[str] = Field(default_factory=list, max_length=8, description="Verbatim log quotes")
    cited_ids: list[str] = Field(default_factory=list, max_length=10, description="Knowledge-base ids used")
    next_actions: list[str] = Field(default_factory=list, max_length=8)
    unknowns: list[str] = Field(default_factory=list, max_length=8)


class SimilarIncident(BaseModel):
    """A knowledge-base hit shown to the reader (runbook or resolved incident)."""

    model_config = ConfigDict(frozen=True)

    id: str
    title: str
    source: Literal["runbook", "incident"]
    score: float
    service: str | None = None
    root_cause: str | None = None
    resolution: str | None = None
    runbook_url: str | None = None
    tags: list[str] = Field(default_factory=list)
    fingerprint: str | None = Field(None, description="Set when recorded for one log template")
    agreement: float | None = Field(
        None, description="Weight of the distinctive terms the incident and the entry share"
    )
    matched_terms: list[str] = Field(default_factory=list, description="Those terms, heaviest first")
    line_match: float | None = Field(
        None, description="Best cosine between an incident line and one of the entry's example lines"
    )
    # What the relevance check reads; kept out of documents, prompts and Slack.
    lexicon: tuple[str, ...] = Field(default=(), exclude=True, repr=False)
    examples: tuple[str, ...] = Field(default=(), exclude=True, repr=False)


class LlmUsage(BaseModel):
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0
    cost_usd: float = 0.0
    cached: bool = False


class AnalysisResult(BaseModel):
    llm: LlmAnalysis | None = None
    similar: list[SimilarIncident] = Field(default_factory=list)
    usage: LlmUsage | None = None
    degraded_reason: str | None = Field(None, description="Why the LLM answer is missing, when it is")
    flags: list[str] = Field(default_factory=list, description="Grounding problems found in the LLM answer")

    @property
    def degraded(self) -> bool:
        return self.llm is None
