"""bayctl.node."""
