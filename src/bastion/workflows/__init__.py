"""The GoHighLevel workflow debugger: sources (GHL API, JSON import), the analysis engine, history."""
