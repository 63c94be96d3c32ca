"""bayctl.providers."""
