"""What our Fluent Bit configuration does to log lines, in Python.

The local pipeline, ``cali loggen --to-stream`` and the tests need the records Fluent Bit
would put into Kinesis, but no Fluent Bit binary runs here. This module reads the real
configuration files in ``fluent-bit/`` at run time (inputs, filters in order, parsers,
multiline rules, output options) and applies them the way Fluent Bit's C code does:

* multiline grouping follows ``src/multiline/flb_ml_rule.c``: continuation rules of the
  current state first, then start rules; a line matching neither flushes the pending
  event and is emitted on its own;
* regex parsers follow ``flb_parser_regex.c``: unanchored search, empty captures skipped,
  ``time_key`` parsed into the record time and removed, a bad time keeps the input time;
  logfmt parsers follow ``flb_parser_logfmt.c`` (pairs up to the first line break,
  ``logfmt_no_bare_keys``, a bad time rejects the line);
* the parser filter follows ``filter_parser.c``: first parser that matches wins, parsed
  keys first, then the other keys (``reserve_data``), the source key dropped unless
  ``preserve_key``;
* ``modify`` applies its rules in file order; ``kubernetes`` appends the pod metadata the
  caller provides (the API server is out of reach here);
* ``kinesis_streams`` serialises the record as compact JSON, appends ``time_key`` at the
  end without checking for an existing key (so a JSON logger's own ``time`` is repeated,
  and ``json.loads`` keeps the last one, as downstream does), adds a newline, and drops
  empty records and records over 1,048,556 bytes.

Regexes are written in the Onigmo/Ruby dialect in the YAML; :func:`compile_onigmo` turns
them into Python patterns. Only the subset both engines read the same way is accepted
(see :func:`portability_problems`).
"""

from __future__ import annotations

from cali_local.fluentbit.config import (
    FILES_CONFIG,
    FLUENT_BIT_DIR,
    KUBERNETES_CONFIG,
    MAX_EVENT_SIZE,
    MAX_EVENTS_PER_PUT,
    PARSERS_FILE,
    PUT_RECORDS_FOOTER_LEN,
    PUT_RECORDS_HEADER_LEN,
    PUT_RECORDS_PAYLOAD_SIZE,
    PUT_RECORDS_PER_RECORD_LEN,
    EmulationError,
)
from cali_local.fluentbit.delivery import DeliveryReport, KinesisStreamsOutput, PutRecordsClient
from cali_local.fluentbit.parsers import MultilineParser, MultilineRule, Parser, ParseResult
from cali_local.fluentbit.pipeline import (
    FluentBitConfig,
    FluentBitPipeline,
    PipelineSession,
    iter_file_records,
    load_config,
)
from cali_local.fluentbit.records import Event, KinesisRecord, LogSource, PipelineStats, PodMetadata
from cali_local.fluentbit.regexes import OnigmoPattern, compile_onigmo, portability_problems, split_slashes

__all__ = [
    "FILES_CONFIG",
    "FLUENT_BIT_DIR",
    "KUBERNETES_CONFIG",
    "MAX_EVENTS_PER_PUT",
    "MAX_EVENT_SIZE",
    "PARSERS_FILE",
    "PUT_RECORDS_FOOTER_LEN",
    "PUT_RECORDS_HEADER_LEN",
    "PUT_RECORDS_PAYLOAD_SIZE",
    "PUT_RECORDS_PER_RECORD_LEN",
    "DeliveryReport",
    "EmulationError",
    "Event",
    "FluentBitConfig",
    "FluentBitPipeline",
    "KinesisRecord",
    "KinesisStreamsOutput",
    "LogSource",
    "MultilineParser",
    "MultilineRule",
    "OnigmoPattern",
    "ParseResult",
    "Parser",
    "PipelineSession",
    "PipelineStats",
    "PodMetadata",
    "PutRecordsClient",
    "compile_onigmo",
    "iter_file_records",
    "load_config",
    "portability_problems",
    "split_slashes",
]
