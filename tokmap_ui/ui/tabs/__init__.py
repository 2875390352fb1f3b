"""One module per tab; each has ``build()`` that lays out its widgets and wires them to handlers."""
