"""bayctl.seed."""
