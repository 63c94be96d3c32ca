"""bayctl.policy."""
