"""LLM root-cause analysis of one (already redacted) incident, through the ``openai`` SDK.

What makes the answer trustworthy enough to post:

* the log content is untrusted data: it travels between ``<<<LOGS`` / ``LOGS>>>``
  delimiters (neutralised inside the content, so a log line cannot close the block) and
  the system message tells the model never to follow it;
* the answer is JSON validated into ``LlmAnalysis``, then *grounded*: citations of ids
  that were not retrieved and "evidence" that does not occur in the logs sent are
  removed and flagged, and an answer left with no support drops to ``low`` confidence;
* cost is bounded: ``max_tokens``, a prompt truncated to a token budget, a daily token
  budget reserved before every call, and an exact-key cache so an incident is paid once.

Every failure (not configured, timeout, 429/5xx after the SDK's bounded retries, budget
spent, invalid output, anything unexpected) returns a retrieval-only ``AnalysisResult``
whose ``degraded_reason`` says why: the alert is posted anyway.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import openai

from cali.analysis.llm.budget import BudgetUnavailableError, Reservation, TokenBudget
from cali.analysis.llm.cache import CachedAnalysis, LlmCache
from cali.analysis.llm.endpoint import RESPONSE_FORMATS, endpoint_limits, rejects_response_format
from cali.analysis.llm.extract import NoAnswerObjectError
from cali.analysis.llm.grounding import _SAFE_ID, check_grounding
from cali.analysis.llm.parsing import LlmUnavailableError, parse_answer
from cali.analysis.llm.pricing import DEFAULT_PRICES, ModelPrice, price_for
from cali.analysis.llm.prompt import PROMPT_VERSION, Prompt, build_prompt, estimate_tokens
from cali.analysis.llm.review import apply_verdict, parse_verdict, review_messages
from cali.contracts.analysis import AnalysisResult, LlmAnalysis, LlmUsage, SimilarIncident
from cali.contracts.incident import IncidentMessage

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletion

logger = logging.getLogger(__name__)


NOT_CALLED_FOR_UPDATE = "update alert: no new LLM call (the first message of the thread has the analysis)"
"""An update message shows counts only (``cali.notify.slack.message``): it reuses a cached
answer for its incident document, and never pays for an analysis nobody would see."""


@dataclass(frozen=True)
class LlmConfig:
    model: str
    max_tokens: int = 800
    prompt_max_tokens: int = 3000
    timeout_seconds: float = 20.0
    max_retries: int = 2
    cache_ttl_seconds: int = 86_400
    prices: Mapping[str, ModelPrice] = field(default_factory=lambda: dict(DEFAULT_PRICES))
    self_hosted: bool = False
    review_pass: bool = False
    """A skeptical second call that may only lower the confidence (``review.py``)."""
    """A server of our own (``cali.llm_endpoint``): no retry after a timeout, tokens free
    unless ``prices`` names the model."""


def config_for_endpoint(
    config: LlmConfig,
    *,
    base_url: str | None,
    self_hosted: bool | None,
    timeout_seconds: float | None = None,
    max_retries: int | None = None,
) -> LlmConfig:
    """``config`` with the timeout, retries and kind that suit the endpoint (explicit values win)."""
    limits = endpoint_limits(
        base_url, self_hosted=self_hosted, timeout_seconds=timeout_seconds, max_retries=max_retries
    )
    return replace(
        config,
        timeout_seconds=limits.timeout_seconds,
        max_retries=limits.max_retries,
        self_hosted=limits.self_hosted,
    )


def cache_key(fingerprint: str, model: str, knowledge_ids: Sequence[str]) -> str:
    material = "\n".join([fingerprint, PROMPT_VERSION, model, *sorted(knowledge_ids)])
    return hashlib.sha256(material.encode()).hexdigest()


class LlmAnalyzer:
    """Turns a redacted incident and its retrieved knowledge into an ``AnalysisResult``."""

    def __init__(
        self,
        client: openai.OpenAI | None,
        config: LlmConfig,
        *,
        budget: TokenBudget,
        cache: LlmCache,
        monotonic: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._client = client
        self.config = config
        self._budget = budget
        self._cache = cache
        self._monotonic = monotonic
        # Adapted once per instance when a server rejects one of them (see _adapt_options).
        self._options: dict[str, Any] = {"max_tokens": config.max_tokens, "temperature": 0}
        self._format = 0  # index in RESPONSE_FORMATS: json_schema, then json_object, then none
        self._set_format(0)

    @classmethod
    def create_client(
        cls, config: LlmConfig, *, api_key: str | None, base_url: str | None
    ) -> openai.OpenAI | None:
        """The SDK client, or ``None`` when there is neither a key nor a custom endpoint."""
        if not api_key and not base_url:
            return None
        return openai.OpenAI(
            # Local OpenAI-compatible servers (llama.cpp, vLLM, the stub) need no key, but
            # the SDK insists on one.
            api_key=api_key or "no-key-needed",
            base_url=base_url or None,
            timeout=config.timeout_seconds,
            # The SDK's retries back off exponentially and honour Retry-After on 429/5xx.
            max_retries=config.max_retries,
        )

    def analyze(
        self, incident: IncidentMessage, similar: Sequence[SimilarIncident], *, cache_only: bool = False
    ) -> AnalysisResult:
        """``cache_only``: return the cached answer if there is one, never call the model."""
        hits = list(similar)
        try:
            return self._analyze(incident, hits, cache_only=cache_only)
        except LlmUnavailableError as exc:
            logger.warning("LLM analysis degraded", extra={"reason": exc.reason})
            return AnalysisResult(llm=None, similar=hits, usage=exc.usage, degraded_reason=exc.reason)
        except Exception as exc:  # a bug or an SDK surprise must not cost the alert
            logger.exception("LLM analysis failed unexpectedly")
            return AnalysisResult(
                llm=None,
                similar=hits,
                degraded_reason=f"LLM analysis failed unexpectedly ({type(exc).__name__})",
            )

    def _analyze(
        self, incident: IncidentMessage, similar: list[SimilarIncident], *, cache_only: bool
    ) -> AnalysisResult:
        if self._client is None:
            raise LlmUnavailableError("LLM not configured (no API key and no base URL)")
        cfg = self.config
        prompt = build_prompt(incident, similar, max_tokens=cfg.prompt_max_tokens)
        key = cache_key(incident.fingerprint, cfg.model, prompt.knowledge_ids)
        cached = self._cache_get(key)
        if cached is not None:
            return AnalysisResult(
                llm=cached.analysis,
                similar=similar,
                usage=LlmUsage(model=cached.model, cached=True),
                flags=list(cached.flags),
            )
        if cache_only:
            return AnalysisResult(similar=similar, degraded_reason=NOT_CALLED_FOR_UPDATE)

        completion, usage, flags = self._call(prompt)
        answer, notes = self._parse(completion, usage)
        grounded, grounding_flags = check_grounding(answer, prompt)
        if cfg.review_pass and grounded.cause_known and grounded.confidence != "low":
            grounded, review_flags, usage = self._review(prompt, grounded, usage)
            grounding_flags = [*grounding_flags, *review_flags]
        self._cache_put(
            key,
            CachedAnalysis(
                analysis=grounded, model=usage.model, flags=grounding_flags, created_at=datetime.now(UTC)
            ),
        )
        return AnalysisResult(
            llm=grounded, similar=similar, usage=usage, flags=[*notes, *grounding_flags, *flags]
        )

    def _call(self, prompt: Prompt) -> tuple[ChatCompletion, LlmUsage, list[str]]:
        """One answer within the daily budget; every failure is an ``LlmUnavailableError``."""
        cfg = self.config
        try:
            reservation = self._budget.reserve(prompt.estimated_tokens + cfg.max_tokens)
        except BudgetUnavailableError as exc:
            raise LlmUnavailableError("token budget store unavailable; not calling the LLM") from exc
        if reservation is None:
            raise LlmUnavailableError("daily LLM token budget spent; not calling the LLM")

        started = self._monotonic()
        spent = 0
        try:
            completion = self._complete(prompt)
            usage, flags = self._usage(completion, prompt, latency_ms=(self._monotonic() - started) * 1000)
            spent = usage.prompt_tokens + usage.completion_tokens
            return completion, usage, flags
        except openai.APITimeoutError as exc:
            # The provider may bill each attempt's prompt before we gave up, and the SDK
            # retried the timeout: count every attempt, or a slow provider outspends the budget.
            spent = prompt.estimated_tokens * (cfg.max_retries + 1)
            retries = "no retry: self-hosted" if cfg.self_hosted else f"{cfg.max_retries} retries"
            raise LlmUnavailableError(f"LLM timed out after {cfg.timeout_seconds:g}s ({retries})") from exc
        except openai.RateLimitError as exc:
            raise LlmUnavailableError(f"LLM rate limited (429) after {cfg.max_retries} retries") from exc
        except openai.AuthenticationError as exc:
            raise LlmUnavailableError("LLM rejected the API key (401)") from exc
        except openai.APIStatusError as exc:
            raise LlmUnavailableError(
                f"LLM request failed with HTTP {exc.status_code} after {cfg.max_retries} retries"
            ) from exc
        except openai.APIConnectionError as exc:
            raise LlmUnavailableError(f"LLM unreachable ({cfg.max_retries} retries)") from exc
        finally:
            self._settle(reservation, spent)

    def _parse(self, completion: ChatCompletion, usage: LlmUsage) -> tuple[LlmAnalysis, list[str]]:
        choice = completion.choices[0] if completion.choices else None
        content = choice.message.content if choice else None
        if not content:
            raise LlmUnavailableError("LLM returned an empty answer", usage=usage)
        try:
            return parse_answer(content)
        except LlmUnavailableError as exc:
            if choice is not None and choice.finish_reason == "length":
                raise LlmUnavailableError(
                    f"LLM answer cut at max_tokens={self.config.max_tokens}; {exc.reason}", usage=usage
                ) from exc
            raise LlmUnavailableError(exc.reason, usage=usage) from exc

    def _review(
        self, prompt: Prompt, answer: LlmAnalysis, usage: LlmUsage
    ) -> tuple[LlmAnalysis, list[str], LlmUsage]:
        """The skeptical second pass (``review.py``); any failure keeps the answer as it is."""
        assert self._client is not None
        messages = review_messages(prompt.evidence_text, answer)
        estimate = sum(estimate_tokens(str(m.get("content", ""))) for m in messages) + 100
        try:
            reservation = self._budget.reserve(estimate)
        except BudgetUnavailableError:
            reservation = None
        if reservation is None:
            return answer, ["review_skipped:budget"], usage
        started = self._monotonic()
        try:
            options = {k: v for k, v in self._options.items() if k != "response_format"}
            if self._format < len(RESPONSE_FORMATS) - 1:
                options["response_format"] = {"type": "json_object"}
            options[("max_completion_tokens" if "max_completion_tokens" in options else "max_tokens")] = 100
            completion = self._client.chat.completions.create(
                model=self.config.model, messages=messages, **options
            )
            content = completion.choices[0].message.content if completion.choices else None
            verdict = parse_verdict(content or "")
        except (openai.OpenAIError, NoAnswerObjectError) as exc:
            self._settle(reservation, estimate)  # a failed or timed-out call may be billed
            logger.warning("LLM review pass failed; keeping the answer", extra={"error": str(exc)[:200]})
            return answer, [f"review_failed:{type(exc).__name__}"], usage
        spent = estimate
        if completion.usage is not None:
            spent = completion.usage.prompt_tokens + completion.usage.completion_tokens
        self._settle(reservation, spent)
        if completion.usage is not None:
            usage = usage.model_copy(
                update={
                    "prompt_tokens": usage.prompt_tokens + completion.usage.prompt_tokens,
                    "completion_tokens": usage.completion_tokens + completion.usage.completion_tokens,
                    "latency_ms": round(usage.latency_ms + (self._monotonic() - started) * 1000, 1),
                }
            )
        reviewed, flags = apply_verdict(answer, verdict)
        return reviewed, flags, usage

    def _complete(self, prompt: Prompt) -> ChatCompletion:
        assert self._client is not None
        for _ in range(len(self._options) + len(RESPONSE_FORMATS)):
            try:
                completion: ChatCompletion = self._client.chat.completions.create(
                    model=self.config.model, messages=prompt.messages(), **self._options
                )
                return completion
            except openai.APIStatusError as exc:
                if not self._adapt_options(exc.status_code, str(exc)):
                    raise
        raise LlmUnavailableError("LLM server rejected every request shape")

    def _set_format(self, index: int) -> None:
        self._format = index
        response_format = RESPONSE_FORMATS[index]
        if response_format is None:
            self._options.pop("response_format", None)
        else:
            self._options["response_format"] = response_format

    def _adapt_options(self, status: int, error: str) -> bool:
        """Drop or rename the option a server says it does not support; False if none applies.

        Servers differ: some have no JSON mode or no ``json_schema`` (llama.cpp's answers it
        with HTTP 500), reasoning models refuse ``temperature`` and want
        ``max_completion_tokens``. The change sticks for the rest of this instance.
        """
        options = self._options
        if "temperature" in options and status == 400 and "temperature" in error:
            del options["temperature"]
        elif "max_tokens" in options and "'max_tokens'" in error and "max_completion_tokens" in error:
            options["max_completion_tokens"] = options.pop("max_tokens")
        elif "response_format" in options and rejects_response_format(
            status, error, sent_json_schema=self._format == 0
        ):
            self._set_format(self._format + 1)
        else:
            return False
        logger.info(
            "LLM server rejected a request option; retrying without it",
            extra={"status": status, "options": list(options), "response_format": self._format},
        )
        return True

    def _usage(
        self, completion: ChatCompletion, prompt: Prompt, *, latency_ms: float
    ) -> tuple[LlmUsage, list[str]]:
        flags: list[str] = []
        if completion.usage is not None:
            prompt_tokens, completion_tokens = (
                completion.usage.prompt_tokens,
                completion.usage.completion_tokens,
            )
        else:  # some compatible servers omit usage: count the estimate against the budget
            content = completion.choices[0].message.content if completion.choices else ""
            prompt_tokens, completion_tokens = prompt.estimated_tokens, estimate_tokens(content or "")
            flags.append("usage_estimated")
        price = price_for(self.config.model, self.config.prices)
        if price is None and self.config.self_hosted:
            price = ModelPrice(0.0, 0.0)  # our own server: no per-token bill
        if price is None:
            flags.append(f"unknown_model_cost:{_SAFE_ID.sub('', self.config.model)[:60]}")
            cost = 0.0
        else:
            cost = (
                prompt_tokens * price.input_per_million + completion_tokens * price.output_per_million
            ) / 1e6
        usage = LlmUsage(
            model=completion.model or self.config.model,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            latency_ms=round(latency_ms, 1),
            cost_usd=round(cost, 8),
        )
        return usage, flags

    def _settle(self, reservation: Reservation, spent: int) -> None:
        try:
            self._budget.settle(reservation, spent)
        except Exception:
            logger.exception("could not reconcile the token budget (the reservation stays counted)")

    def _cache_get(self, key: str) -> CachedAnalysis | None:
        try:
            return self._cache.get(key)
        except Exception:  # a cache outage costs tokens, not the analysis
            logger.exception("LLM cache read failed; calling the model")
            return None

    def _cache_put(self, key: str, value: CachedAnalysis) -> None:
        try:
            self._cache.put(key, value, ttl_seconds=self.config.cache_ttl_seconds)
        except Exception:
            logger.exception("LLM cache write failed")
