"""The embedders: the real local ONNX model, and OpenAI against a local stand-in server."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from cali.analysis.embeddings import (
    Embedder,
    EmbeddingDimensionError,
    EmbeddingError,
    LocalOnnxEmbedder,
    OpenAIEmbedder,
    make_embedder,
)
from cali.contracts.settings import AnalyzerSettings


@pytest.fixture(scope="module")
def local() -> LocalOnnxEmbedder:
    return LocalOnnxEmbedder()


def _cos(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_local_vectors_have_384_dims_and_unit_length(local: LocalOnnxEmbedder) -> None:
    vectors = local.embed(["HikariPool-1 - Connection is not available", "disk full", ""])
    assert local.dim == 384
    assert [len(v) for v in vectors] == [384, 384, 384]
    for vector in vectors:
        assert math.isclose(math.sqrt(sum(x * x for x in vector)), 1.0, rel_tol=1e-4)
    assert isinstance(local, Embedder)


def test_local_similar_texts_are_closer_than_unrelated(local: LocalOnnxEmbedder) -> None:
    pool, pool_paraphrase, cert, cooking = local.embed(
        [
            "HikariPool-1 - Connection is not available, request timed out after 30000ms.",
            "all database connections in the pool are busy, requests wait for a free connection",
            "x509: certificate has expired or is not yet valid",
            "Preheat the oven to 180 degrees and bake the bread for forty minutes.",
        ]
    )
    assert _cos(pool, pool_paraphrase) > _cos(pool, cert) + 0.1
    assert _cos(pool, pool_paraphrase) > _cos(pool, cooking) + 0.3


def test_local_batches_keep_input_order_and_match_single_calls(local: LocalOnnxEmbedder) -> None:
    texts = [f"error number {i} " + "word " * (i * 7 % 40) for i in range(37)]  # uneven lengths
    batched = local.embed(texts)
    for index in (0, 5, 36):
        assert _cos(batched[index], local.embed([texts[index]])[0]) > 0.9999


def test_local_truncates_long_texts_instead_of_failing(local: LocalOnnxEmbedder) -> None:
    (vector,) = local.embed(["stack frame at com.example.Foo.bar(Foo.java:12) " * 400])
    assert len(vector) == 384


def test_embed_rejects_a_bare_string(local: LocalOnnxEmbedder) -> None:
    with pytest.raises(TypeError):
        local.embed("one text")  # a str is a Sequence[str]: caught at run time
    assert local.embed([]) == []


def test_make_embedder_local_checks_configured_dimension() -> None:
    with pytest.raises(EmbeddingDimensionError) as caught:
        make_embedder(AnalyzerSettings(embedding_dim=768), None)
    assert "768" in str(caught.value) and "384" in str(caught.value)
    assert make_embedder(AnalyzerSettings(), None).dim == 384


def test_make_embedder_local_rejects_a_model_it_does_not_ship() -> None:
    with pytest.raises(ValueError, match="only ships"):
        make_embedder(AnalyzerSettings(embedding_model="bge-large-en"), None)


def test_make_embedder_openai_needs_a_key() -> None:
    with pytest.raises(ValueError, match="API key"):
        make_embedder(AnalyzerSettings(embedding_provider="openai", embedding_dim=256), None)


# --- OpenAI-compatible embeddings API stand-in ------------------------------------------


class _FakeEmbeddings(BaseHTTPRequestHandler):
    """Answers POST /v1/embeddings like OpenAI: honours ``dimensions``, may 429 first."""

    script: ClassVar[list[tuple[int, dict[str, str]]]] = []  # queued (status, headers) answers
    requests: ClassVar[list[dict[str, Any]]] = []
    wrong_dims: ClassVar[bool] = False

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(body)
        if self.script:
            status, headers = self.script.pop(0)
            payload = json.dumps({"error": {"message": "slow down", "type": "rate_limit"}}).encode()
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        dims = body["dimensions"] + (1 if self.wrong_dims else 0)
        data = [
            # Not unit length on purpose: the client must normalise.
            {"object": "embedding", "index": i, "embedding": [float(len(text) + 1)] + [0.5] * (dims - 1)}
            for i, text in enumerate(body["input"])
        ]
        data.reverse()  # the API does not promise order; the client sorts by index
        payload = json.dumps(
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": 3, "total_tokens": 3},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def openai_server() -> Iterator[str]:
    _FakeEmbeddings.script, _FakeEmbeddings.requests, _FakeEmbeddings.wrong_dims = [], [], False
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeEmbeddings)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_openai_embedder_sends_dimensions_and_normalises(openai_server: str) -> None:
    settings = AnalyzerSettings(
        embedding_provider="openai", embedding_dim=256, embedding_base_url=openai_server
    )
    embedder = make_embedder(settings, "sk-test")
    assert (embedder.model_name, embedder.dim) == ("text-embedding-3-small", 256)
    vectors = embedder.embed(["short", "a much longer text", ""])
    request = _FakeEmbeddings.requests[0]
    assert request["dimensions"] == 256 and request["model"] == "text-embedding-3-small"
    assert request["input"][2] == " "  # the API rejects empty strings
    assert [len(v) for v in vectors] == [256, 256, 256]
    assert all(math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-5) for v in vectors)
    assert vectors[0] != vectors[1]  # order follows the input, not the response


def test_openai_embedder_retries_429_with_retry_after(openai_server: str) -> None:
    _FakeEmbeddings.script = [(429, {"Retry-After": "0"}), (503, {})]
    embedder = OpenAIEmbedder(api_key="sk-test", dim=8, base_url=openai_server, max_retries=3)
    assert len(embedder.embed(["x"])[0]) == 8
    assert len(_FakeEmbeddings.requests) == 3


def test_openai_embedder_gives_up_with_a_clear_error(openai_server: str) -> None:
    _FakeEmbeddings.script = [(500, {})] * 5
    embedder = OpenAIEmbedder(api_key="sk-test", dim=8, base_url=openai_server, max_retries=1)
    with pytest.raises(EmbeddingError, match="embeddings API failed"):
        embedder.embed(["x"])


def test_openai_embedder_rejects_vectors_of_the_wrong_size(openai_server: str) -> None:
    _FakeEmbeddings.wrong_dims = True
    embedder = OpenAIEmbedder(api_key="sk-test", dim=8, base_url=openai_server)
    with pytest.raises(EmbeddingDimensionError, match="embedding_dim=8, but got 9"):
        embedder.embed(["x"])
