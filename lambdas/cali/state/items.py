"""Python values <-> DynamoDB attribute values, with boto3's own (de)serializer.

The low-level client API takes ``{"N": "3"}``-style maps; writing those by hand in every
store is where type slips hide. Numbers come back as ``Decimal``: whole ones (all CALI
stores) are turned into ``int`` so callers never see ``Decimal``.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()


def to_item(values: Mapping[str, Any]) -> dict[str, Any]:
    """Attribute values for ``Item=``, ``Key=`` or ``ExpressionAttributeValues=``."""
    return {name: _SERIALIZER.serialize(value) for name, value in values.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """A returned item as plain Python values (``int`` for whole numbers)."""
    return {name: _plain(_DESERIALIZER.deserialize(value)) for name, value in item.items()}
