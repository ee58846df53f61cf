"""The LLM step of the analysis: prompt, grounding of the answer, cache and daily token budget
(docs/analysis.md)."""
