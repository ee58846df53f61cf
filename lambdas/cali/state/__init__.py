"""Stage ``state``: the one DynamoDB table every stage shares (docs/state.md).

:mod:`cali.state.keys` owns the key schema (what each item's ``pk``/``sk`` look like) and
:mod:`cali.state.items` converts between Python values and DynamoDB attribute values with
boto3's own serializer. The stores stay next to the stage that uses them, behind small
Protocols; their in-memory doubles live in ``cali_testing``.
"""
