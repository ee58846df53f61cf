"""Knowledge store pieces that need no Milvus: connection errors, text budgets, escaping."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from cali.contracts.settings import AnalyzerSettings
from cali.knowledge.store import KnowledgeStore, KnowledgeStoreError, _cut, _literal, _redact_uri


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


def test_milvus_secret_values_are_stripped_and_checked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A newline pasted with the URI or token would make every connection fail.
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    uri = str(tmp_path / "milvus.db")
    with mock_aws():
        secrets = boto3.client("secretsmanager")
        good = secrets.create_secret(Name="cali/milvus-ok", SecretString=json.dumps({"uri": f" {uri}\n"}))
        store = KnowledgeStore.from_settings(
            AnalyzerSettings(milvus_secret_arn=good["ARN"], milvus_collection="c", embedding_dim=384)
        )
        try:
            assert not store.has_collection()
        finally:
            store.close()
        assert (tmp_path / "milvus.db").exists()
        odd = secrets.create_secret(Name="cali/milvus-odd", SecretString=json.dumps({"uri": ["x"]}))
        with pytest.raises(KnowledgeStoreError, match="uri"):
            KnowledgeStore.from_settings(AnalyzerSettings(milvus_secret_arn=odd["ARN"]))
