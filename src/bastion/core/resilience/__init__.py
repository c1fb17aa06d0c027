"""Resilience kit for outbound calls: circuit breaker, retry (stamina), bulkhead, single-flight."""

from bastion.core.resilience.breaker import CircuitBreaker, State
from bastion.core.resilience.bulkhead import Bulkhead
from bastion.core.resilience.retry import retrying
from bastion.core.resilience.singleflight import SingleFlight

__all__ = ["Bulkhead", "CircuitBreaker", "SingleFlight", "State", "retrying"]
