"""GoHighLevel as a source: its API client, the per-location tokens, sync of workflows, agencies."""
