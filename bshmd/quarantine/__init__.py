"""The quarantine tree: inputs that were refused, with their reason, for a person to review."""
