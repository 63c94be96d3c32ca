"""bayctl.image."""
