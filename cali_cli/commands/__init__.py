"""One module per ``cali`` subcommand; each exposes ``register(subparsers)``."""
