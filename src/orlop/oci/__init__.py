"""OCI runtime-spec and image-spec data models and validation (stdlib only)."""
