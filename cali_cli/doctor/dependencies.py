"""Checks of CALI's outside dependencies: Slack, the OpenAI-compatible LLM, Milvus, OpenSearch.

Shared by ``cali doctor --env`` (values from the deployed secrets) and ``--local`` (the
services ``make demo`` uses). Each check talks to the real endpoint with a short timeout
and never posts a message, spends tokens or writes data.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from cali_cli.doctor.report import Check

TIMEOUT_SECONDS = 10.0
SLACK_API = "https://slack.com/api/"
OPENAI_API = "https://api.openai.com/v1"
KNOWLEDGE_COLLECTION = "cali_knowledge"


def _request(
    url: str, *, method: str = "GET", body: bytes | None = None, headers: Mapping[str, str] | None = None
) -> tuple[int, str]:
    """(status, body) of one HTTP call; HTTP errors are answers too, only no answer raises."""
    if not url.startswith(("https://", "http://")):
        raise ValueError(f"not an http(s) URL: {url!r}")
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
            return int(response.status), response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return int(error.code), error.read().decode("utf-8", "replace")


def _unreachable(error: Exception) -> str:
    reason = getattr(error, "reason", error)
    return f"no answer ({reason})"


def check_slack(secret: Mapping[str, Any] | None, *, fix_set: str, api_base_url: str = SLACK_API) -> Check:
    """Bot token: ``auth.test``. Webhook: an empty POST, which Slack refuses with 400
    ``no_text`` (so nothing is posted) when the webhook exists and 403/404 when it does not."""
    if not secret:
        return Check.fail("slack", "not configured: alerts cannot be delivered", fix_set)
    if secret.get("bot_token") and secret.get("channel"):
        return _check_bot_token(str(secret["bot_token"]), str(secret["channel"]), fix_set, api_base_url)
    webhook = str(secret.get("webhook_url") or "")
    if not webhook:
        return Check.fail("slack", 'secret is not {"webhook_url"} or {"bot_token", "channel"}', fix_set)
    return _check_webhook(webhook, fix_set)


def _check_bot_token(token: str, channel: str, fix_set: str, api_base_url: str) -> Check:
    try:
        status, text = _request(
            api_base_url.rstrip("/") + "/auth.test",
            method="POST",
            body=b"{}",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json; charset=utf-8"},
        )
    except (OSError, ValueError) as error:
        return Check.fail("slack", f"Slack API: {_unreachable(error)}", "check network access to slack.com")
    answer = _json(text)
    if status == 200 and answer.get("ok") is True:
        return Check.ok("slack", f"bot token valid (team {answer.get('team_id', '?')}), channel {channel}")
    return Check.fail(
        "slack",
        f"auth.test refused the bot token: {answer.get('error') or status}",
        "create a new bot token (scope chat:write) and " + fix_set,
    )


def _check_webhook(webhook: str, fix_set: str) -> Check:
    try:
        status, text = _request(
            webhook, method="POST", body=b"{}", headers={"Content-Type": "application/json"}
        )
    except (OSError, ValueError) as error:
        return Check.fail("slack", f"webhook: {_unreachable(error)}", "check the URL and network access")
    if status == 400 and text.strip() in ("no_text", "invalid_payload"):
        return Check.ok("slack", "webhook exists (dry check: an empty message was refused, nothing posted)")
    return Check.fail(
        "slack",
        f"webhook answered {status} {text.strip()[:80]!r}: revoked or mistyped",
        "create a new incoming webhook for the channel and " + fix_set,
    )


def _json(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def check_llm(api_key: str | None, *, base_url: str, model: str, fix_set: str) -> Check:
    """``GET <base>/models``: the key is accepted and the configured model is served."""
    name = "llm"
    base = (base_url or OPENAI_API).rstrip("/")
    if not api_key and base == OPENAI_API:
        return Check.warn(
            name,
            "no API key: analyses are retrieval-only summaries (by design, but no LLM)",
            fix_set,
        )
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        status, text = _request(base + "/models", headers=headers)
    except (OSError, ValueError) as error:
        return Check.fail(
            name, f"{base}: {_unreachable(error)}", "check llm_base_url in cdk.json and the network"
        )
    if status in (401, 403):
        return Check.fail(
            name, f"{base}/models refused the key ({status})", "create a new API key and " + fix_set
        )
    if status != 200:
        return Check.fail(
            name, f"{base}/models answered {status}", "check llm_base_url (it must end before /models)"
        )
    served = [str(item.get("id")) for item in _json(text).get("data", []) if isinstance(item, dict)]
    if served and model not in served:
        return Check.warn(
            name,
            f"model {model!r} is not among the {len(served)} models served at {base}",
            "set analyzer.llm_model in cdk.json to one of: " + ", ".join(served[:5]),
        )
    return Check.ok(name, f"{base} accepts the key and serves {model}")


def check_milvus(
    uri: str | None, token: str | None, *, fix_set: str, fix_sync: str, collection: str = KNOWLEDGE_COLLECTION
) -> list[Check]:
    """Milvus answers, the knowledge collection is loaded and holds entries."""
    if not uri:
        return [Check.warn("milvus", "not configured: analyses run without similar incidents", fix_set)]
    try:
        from pymilvus import MilvusClient

        client = MilvusClient(uri=uri, token=token or "", timeout=TIMEOUT_SECONDS)
    except Exception as error:  # pymilvus raises several unrelated types for "cannot connect"
        return [
            Check.fail(
                "milvus",
                f"cannot connect to {_redact(uri)}: {error}",
                "check the URI/token and the network path (see docs/deploy.md#milvus)",
            )
        ]
    try:
        knowledge = _check_knowledge(client, collection, fix_sync)
    finally:
        client.close()
    return [Check.ok("milvus", f"{_redact(uri)} answers"), knowledge]


def _check_knowledge(client: Any, collection: str, fix_sync: str) -> Check:
    if not client.has_collection(collection):
        return Check.fail("knowledge", f"collection {collection!r} does not exist yet", fix_sync)
    how = ""
    state = str(client.get_load_state(collection).get("state", ""))
    if "Loaded" not in state:
        # Released (or, in Milvus Lite, not loaded by this process): load it the way the
        # analyzer does when it connects, so a collection that cannot load fails here.
        try:
            client.load_collection(collection, timeout=TIMEOUT_SECONDS)
        except Exception as error:  # pymilvus raises MilvusException subclasses and grpc errors
            return Check.fail(
                "knowledge", f"collection {collection!r} does not load ({state}): {error}", fix_sync
            )
        how = " (was not loaded; loaded now, as the analyzer does on start)"
    count = int(client.get_collection_stats(collection).get("row_count", 0))
    if count == 0:
        return Check.fail("knowledge", f"collection {collection!r} is empty", fix_sync)
    return Check.ok("knowledge", f"collection {collection!r} loaded{how}, {count} entries")


def _redact(uri: str) -> str:
    return uri.rsplit("@", maxsplit=1)[-1].split("?", maxsplit=1)[0]


def check_opensearch(client: Any, *, fix_access: str) -> list[Check]:
    """Cluster health, CALI's index templates and its ISM retention policies."""
    from opensearchpy.exceptions import ConnectionError as SearchConnectionError
    from opensearchpy.exceptions import NotFoundError, TransportError

    from cali.search import index as search_index

    try:
        health = client.transport.perform_request("GET", "/_cluster/health")
    except SearchConnectionError as error:
        return [Check.fail("opensearch", f"no answer: {error.error}", "check the endpoint and network")]
    except TransportError as error:
        return [Check.fail("opensearch", f"cluster health refused ({error.status_code})", fix_access)]
    status = str(health.get("status", "unknown"))
    nodes = health.get("number_of_data_nodes", "?")
    if status == "green":
        checks = [Check.ok("opensearch", f"cluster green, {nodes} data nodes")]
    elif status == "yellow":
        checks = [
            Check.warn(
                "opensearch",
                f"cluster yellow ({health.get('unassigned_shards', '?')} unassigned shards)",
                "GET _cluster/allocation/explain; a replica needs a second data node",
            )
        ]
    else:
        checks = [Check.fail("opensearch", f"cluster {status}", "GET _cluster/allocation/explain")]
    missing = []
    for name in search_index.index_templates():
        try:
            client.transport.perform_request("GET", f"/_index_template/{name}")
        except NotFoundError:
            missing.append(name)
        except TransportError as error:
            return [*checks, Check.fail("index templates", f"cannot read ({error.status_code})", fix_access)]
    checks.append(
        Check.fail(
            "index templates", f"missing: {', '.join(missing)}", "redeploy: OpenSearchSetup applies them"
        )
        if missing
        else Check.ok("index templates", "cali-logs and cali-incidents applied")
    )
    checks.append(_check_ism(client, fix_access))
    return checks


def _check_ism(client: Any, fix_access: str) -> Check:
    from opensearchpy.exceptions import NotFoundError, TransportError

    from cali.search import index as search_index

    missing = []
    for policy_id in (search_index.LOGS_POLICY_ID, search_index.INCIDENTS_POLICY_ID):
        try:
            client.transport.perform_request("GET", f"/_plugins/_ism/policies/{policy_id}")
        except NotFoundError as error:
            if "policy" not in str(error.info).lower():
                # A 404 for the endpoint itself: this server has no ISM plugin (a local stand-in).
                return Check.skip(
                    "ism", "this server has no ISM plugin (local stand-in): retention not checked"
                )
            missing.append(policy_id)
        except TransportError as error:
            if error.status_code in (400, 405, 501):
                return Check.skip(
                    "ism", "this server has no ISM plugin (local stand-in): retention not checked"
                )
            return Check.fail("ism", f"cannot read ISM policies ({error.status_code})", fix_access)
    if missing:
        return Check.fail(
            "ism", f"missing policies: {', '.join(missing)}", "redeploy: OpenSearchSetup applies them"
        )
    return Check.ok("ism", "retention policies for logs and incidents applied")
