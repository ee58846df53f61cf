"""Paths of the Fluent Bit configuration and the limits of its Kinesis output."""

from __future__ import annotations

import re
from pathlib import Path

FLUENT_BIT_DIR = Path(__file__).resolve().parents[2] / "fluent-bit"
KUBERNETES_CONFIG = FLUENT_BIT_DIR / "fluent-bit.yaml"
FILES_CONFIG = FLUENT_BIT_DIR / "fluent-bit-files.yaml"
PARSERS_FILE = FLUENT_BIT_DIR / "parsers.yaml"
MAX_EVENT_SIZE = 1_048_556
PUT_RECORDS_PAYLOAD_SIZE = 5_242_880
MAX_EVENTS_PER_PUT = 500
PUT_RECORDS_HEADER_LEN = 30
PUT_RECORDS_PER_RECORD_LEN = 48
PUT_RECORDS_FOOTER_LEN = 4
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class EmulationError(Exception):
    """The configuration uses something this emulation cannot reproduce faithfully."""
