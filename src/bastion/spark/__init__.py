"""A self-hosted Spark runtime backend: the ``/_spark/kv``, ``/_spark/user`` and ``/_spark/loaded`` routes."""
