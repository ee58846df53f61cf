"""Hostile records against the consumer's memory: one 1 MiB Kinesis record of tiny lines.

Fault scenarios (issue 11, row 8), not unit tests: each decodes half a million lines.
"""

from __future__ import annotations

from tests.support.consumer_support import Clock, Fake, kinesis_input


def test_a_megabyte_of_bad_lines_is_one_dlq_entry_in_bounded_memory() -> None:
    """Issue 11 row 8: 524,288 bad lines in one 1 MiB record were 524,288 DLQ objects and
    940 MB of peak memory in ``add`` (the Lambda has 512 MB)."""
    import dataclasses
    import tracemalloc

    fake = Fake(Clock())
    fake.consumer.config = dataclasses.replace(fake.consumer.config, max_record_bytes=1_048_576)
    payload = b"\xff\n" * 524_288  # not UTF-8: readable text would be raw lines (issue 10)
    tracemalloc.start()
    try:
        fake.consumer.add(kinesis_input(payload, 1))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    result = fake.consumer.finish()
    (entry,) = fake.dlq.entries.values()
    assert entry.events == result.counts.invalid == 524_288 and entry.reason == "invalid_utf8"
    assert entry.data == b"\xff\n" * 524_287 + b"\xff"  # the bad lines, replayable as one record
    print(f"peak traced memory in add for 1 MiB of bad lines: {peak / 1e6:.0f} MB")
    assert peak < 128e6


def test_a_megabyte_of_tiny_readable_lines_is_counted_in_bounded_memory() -> None:
    """The same record of readable text: 524,288 raw lines, each counted, within the Lambda's memory."""
    import dataclasses
    import tracemalloc

    fake = Fake(Clock())
    fake.consumer.config = dataclasses.replace(fake.consumer.config, max_record_bytes=1_048_576)
    tracemalloc.start()
    try:
        fake.consumer.add(kinesis_input(b"x\n" * 524_288, 1))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    counts = fake.consumer.finish().counts
    assert counts.records_in == counts.filtered == 524_288 and counts.conserved
    print(f"peak traced memory in add for 1 MiB of one-byte lines: {peak / 1e6:.0f} MB")
    assert peak < 256e6
