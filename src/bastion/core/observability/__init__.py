"""Observability beyond the access line and the metrics: the periodic reports (``reports.py``), and the opt-in
error tracking (``sentry.py``) and traces (``tracing.py``, ``propagation.py``), each loaded only when configured."""
