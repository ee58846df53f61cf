"""Stage ``analysis`` (the incident analyzer): redact -> embed -> retrieve knowledge -> LLM ->
notify -> incident document (docs/analysis.md)."""
