"""Knowledge store pieces that need no Milvus: connection errors, text budgets, escaping."""

from __future__ import annotations

import socket

import pytest

from cali.knowledge_store import KnowledgeStore, KnowledgeStoreError, _cut, _literal, _redact_uri


def test_unreachable_server_fails_fast_with_a_clear_error() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(KnowledgeStoreError, match=f"cannot connect to Milvus at http://127.0.0.1:{port}"):
        KnowledgeStore.connect(f"http://127.0.0.1:{port}", collection="x", dim=384, timeout_seconds=1)


def test_credentials_in_a_uri_are_not_repeated_in_errors() -> None:
    assert (
        _redact_uri("https://user:s3cret@milvus.example.com:19530") == "https://***@milvus.example.com:19530"
    )
    assert _redact_uri("./.cali/milvus.db") == "./.cali/milvus.db"


def test_text_is_cut_to_the_byte_budget_on_a_character_boundary() -> None:
    cut = _cut("é" * 100, "service")  # 200 bytes into a 128-byte field
    assert len(cut.encode("utf-8")) <= 128 and cut == "é" * 64
    assert _cut(None, "title") == ""


def test_filter_literals_escape_quotes_and_backslashes() -> None:
    assert _literal('orders" or id != "') == '"orders\\" or id != \\""'
    assert _literal("a\\b") == '"a\\\\b"'
