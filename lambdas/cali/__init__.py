"""CALI domain code shared by the Lambda handlers, the operator CLI and the local pipeline.

Modules hold plain, testable logic; AWS and other I/O sit behind small Protocol
interfaces next to the code that uses them, so that local, test and AWS implementations
swap by configuration.
"""

import logging

# Register the package's parent logger: every module logs through a child of it
# (``logging.getLogger(__name__)``), and Powertools' copy_config_to_registered_loggers only
# configures registered top-level loggers, so each handler gives "cali" its JSON format.
logging.getLogger(__name__).addHandler(logging.NullHandler())
