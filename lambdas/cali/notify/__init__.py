"""Stage ``notify``: where analysed incidents are delivered to people."""
