"""bayctl.verify."""
