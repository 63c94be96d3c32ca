"""bayctl.cloud."""
