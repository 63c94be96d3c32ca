"""bayctl.create."""
