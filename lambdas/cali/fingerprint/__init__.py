"""Stage ``fingerprint``: a stable id for the template of a log event (docs/fingerprint.md).

The template rules live in :mod:`cali.fingerprint.template`, stack-trace parsing in
:mod:`cali.fingerprint.stack`; this module is the public surface the consumer, the indexer
and the CLI import.
"""

from cali.fingerprint.template import ALGORITHM_VERSION, WILDCARD, Fingerprint, Fingerprinter, fingerprint

__all__ = ["ALGORITHM_VERSION", "WILDCARD", "Fingerprint", "Fingerprinter", "fingerprint"]
