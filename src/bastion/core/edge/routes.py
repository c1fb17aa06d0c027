"""Route groups: which edge policy (rate-limit tier, body limit, body media types) a request gets.

Modules declare groups by path prefix or template; the most specific match wins, and a request that
matches none gets the default policy (``general`` tier, the global body limit, JSON bodies)::

    RouteGroup("/_spark/kv", RoutePolicy(tier="kv", media_types=("text/plain", "application/json")))
    RouteGroup("/api/secrets/{id}/reveal", RoutePolicy(tier="secrets_read"), methods={"POST"})
    RouteGroup("/health", RoutePolicy(tier=None))        # probes are never rate limited
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bastion.core.edge.asgi import RoutePolicy


@dataclass(frozen=True, slots=True)
class RouteGroup:
    """``path`` is a prefix (``/_spark/kv`` matches ``/_spark/kv`` and ``/_spark/kv/...``) unless
    ``exact``; a ``{name}`` segment matches any one segment. ``methods`` restricts the group."""

    path: str
    policy: RoutePolicy
    methods: frozenset[str] | None = None
    exact: bool = False

    def __init__(
        self, path: str, policy: RoutePolicy, methods: Iterable[str] | None = None, exact: bool = False
    ) -> None:
        object.__setattr__(self, "path", path.rstrip("/") or "/")
        object.__setattr__(self, "policy", policy)
        object.__setattr__(self, "methods", frozenset(m.upper() for m in methods) if methods else None)
        object.__setattr__(self, "exact", exact)


class RouteTable:
    """Resolves a request to its policy; results are cached per (method, path), bounded."""

    def __init__(self, groups: Iterable[RouteGroup], default: RoutePolicy) -> None:
        self.default = default
        compiled = [(tuple(s for s in group.path.split("/") if s), group) for group in groups]
        # most specific first: more segments, then more literal ones, then method-restricted
        compiled.sort(
            key=lambda item: (-len(item[0]), -sum(1 for s in item[0] if not s.startswith("{")), item[1].methods is None)
        )
        self._groups = compiled
        self._cache: dict[tuple[str, str], RoutePolicy] = {}

    def resolve(self, method: str, path: str) -> RoutePolicy:
        key = (method, path)
        found = self._cache.get(key)
        if found is None:
            found = self._match(method, path)
            if len(self._cache) >= 8192:
                self._cache.clear()
            self._cache[key] = found
        return found

    def _match(self, method: str, path: str) -> RoutePolicy:
        parts = [s for s in path.split("/") if s]
        for segments, group in self._groups:
            if group.methods is not None and method not in group.methods:
                continue
            if len(parts) < len(segments) or (group.exact and len(parts) != len(segments)):
                continue
            if all(s.startswith("{") or s == p for s, p in zip(segments, parts, strict=False)):
                return group.policy
        return self.default
