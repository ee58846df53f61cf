"""The single-table key schema and the attribute-value mapper.

The key formats are a contract with items already in deployed tables (and with operators'
queries): a change here must be a migration, so the exact strings are pinned.
"""

from __future__ import annotations

from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from cali.state import keys
from cali.state.items import from_item, to_item


def test_key_formats_are_stable() -> None:
    assert keys.throttle("fp1") == keys.Key("throttle#fp1", "window")
    assert keys.alert("inc-1", "new", 3) == keys.Key("incident#inc-1", "alert#new#3")
    assert keys.llm_cache("abc") == keys.Key("llmcache#abc", "llmcache")
    assert keys.token_budget(date(2026, 12, 3)) == keys.Key("budget#2026-12-03", "tokens")
    assert keys.slack_thread("fp1", "C123") == keys.Key("slackthread#fp1", "C123")
    assert keys.alert("x", "new", 1).pk.startswith(keys.INCIDENT_PREFIX)


def test_key_item_is_low_level_attribute_values() -> None:
    assert keys.throttle("fp").item() == {"pk": {"S": "throttle#fp"}, "sk": {"S": "window"}}


def test_items_use_dynamodb_types() -> None:
    item = to_item({"n": 3, "b": True, "s": "x", "m": {"shard": "0001"}})
    assert item == {
        "n": {"N": "3"},
        "b": {"BOOL": True},
        "s": {"S": "x"},
        "m": {"M": {"shard": {"S": "0001"}}},
    }


@given(
    st.dictionaries(
        st.text(min_size=1, max_size=8),
        st.integers(min_value=-(10**15), max_value=10**15)
        | st.booleans()
        | st.text(max_size=20)
        | st.dictionaries(st.text(min_size=1, max_size=5), st.text(max_size=10), max_size=3),
        max_size=6,
    )
)
def test_round_trip_gives_plain_python_values(values: dict[str, object]) -> None:
    back = from_item(to_item(values))
    assert back == values
    assert all(type(back[k]) is type(v) for k, v in values.items())
