"""``cali``: the operator command-line tool."""
