"""Where secrets are kept: one protocol (``base.SecretBackend``), an SQL and a Redis backend."""
