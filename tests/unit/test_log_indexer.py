from __future__ import annotations

import base64
import json
from typing import Any

from log_indexer.handler import handler, merge_documents, to_documents, transform_record

from tests.support.consumer_support import cloudwatch, event, line
from tests.support.document_contracts import LOG_DOCUMENT_FIELDS


def firehose_record(record_id: str, payload: bytes) -> dict[str, Any]:
    return {
        "recordId": record_id,
        "approximateArrivalTimestamp": 1795428000000,
        "data": base64.b64encode(payload).decode(),
    }


class Context:
    function_name = "log_indexer"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:log_indexer"
    aws_request_id = "req"


def test_to_documents_follows_the_contract() -> None:
    [doc] = to_documents(
        line(event(kubernetes={"pod_name": "p", "namespace_name": "n"}, extra="kept")), "prod"
    )
    assert set(doc) == LOG_DOCUMENT_FIELDS
    assert (doc["level"], doc["service"], doc["environment"], doc["pod"], doc["namespace"]) == (
        "ERROR",
        "checkout",
        "prod",
        "p",
        "n",
    )
    assert doc["@timestamp"] == "2026-11-23T10:00:00Z" and doc["fields"] == {"extra": "kept"}
    assert len(doc["fingerprint"]) == 16 and "<*>" in doc["template"]


def test_one_output_per_record_id_with_ok_dropped_and_failed(capsys: Any) -> None:
    records = [
        firehose_record("a", line(event())),
        firehose_record("b", b"{not json"),
        firehose_record("c", cloudwatch([], control=True)),
        firehose_record("d", line(event(level="INFO")) + b"\n" + line(event(level="ERROR", message="worst"))),
        {"recordId": "e", "data": "%%%"},
    ]
    response = handler({"invocationId": "i", "records": records}, Context())
    results = {r["recordId"]: r for r in response["records"]}
    assert [r["recordId"] for r in response["records"]] == ["a", "b", "c", "d", "e"]
    assert [results[k]["result"] for k in "abcde"] == [
        "Ok",
        "ProcessingFailed",
        "Dropped",
        "Ok",
        "ProcessingFailed",
    ]
    assert results["b"]["data"] == records[1]["data"]  # Firehose backs up the original bytes
    merged = json.loads(base64.b64decode(results["d"]["data"]))
    assert merged["message"] == "worst" and merged["fields"]["record_events"] == 2
    assert merged["fields"]["other_events"][0]["level"] == "INFO"
    out = capsys.readouterr().out
    assert '"DocumentsIndexed":[2.0]' in out and '"DocumentsFailed":[2.0]' in out


def test_multi_event_record_keeps_first_of_equally_severe() -> None:
    docs = to_documents(line(event(message="first")) + b"\n" + line(event(message="second")), "prod")
    assert merge_documents(docs)["message"] == "first"


def test_cloudwatch_envelope_becomes_one_document() -> None:
    result = transform_record(firehose_record("x", cloudwatch(["[ERROR] a", "b", "c"])), "prod").asdict()
    doc = json.loads(base64.b64decode(result["data"]))
    assert result["result"] == "Ok" and doc["level"] == "ERROR" and doc["fields"]["record_events"] == 3


def test_unexpected_error_fails_only_its_own_record(monkeypatch: Any, capsys: Any) -> None:
    # An exception escaping the handler fails the whole invocation: Firehose retries it and
    # then sends every record of the batch to the error prefix, not just the one at fault.
    import log_indexer.handler as module

    from cali.fingerprint import fingerprint as real

    def buggy(message: str, stack_trace: str | None = None) -> Any:
        if "trigger" in message:
            raise RuntimeError("fingerprint bug")
        return real(message, stack_trace)

    monkeypatch.setattr(module, "fingerprint", buggy)
    records = [firehose_record("a", line(event())), firehose_record("b", line(event(message="trigger")))]
    response = handler({"invocationId": "i", "records": records}, Context())
    assert [(r["recordId"], r["result"]) for r in response["records"]] == [
        ("a", "Ok"),
        ("b", "ProcessingFailed"),
    ]
    assert response["records"][1]["data"] == records[1]["data"]


def test_raw_lines_are_indexed_at_their_own_time_with_their_level() -> None:
    from datetime import UTC, datetime

    from log_indexer.handler import index_payload

    arrival = datetime(2026, 11, 23, 10, 5, tzinfo=UTC)
    payload = line({"log": "Nov 23 10:00:01 bastion sshd[7]: Failed password for root from 10.0.0.9"})
    (doc,) = index_payload(payload, "prod", arrival).documents
    assert doc["@timestamp"] == "2026-11-23T10:00:01Z"
    assert doc["level"] == "WARN" and doc["service"] == "sshd"
    assert doc["fields"]["level_source"] == "inferred"
