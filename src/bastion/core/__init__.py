"""The production layer: edge middleware, stores, limits, resilience, data, operations.

Nothing here imports a module (identity, ai, ...): modules build on the core, never the reverse.
"""
