"""The decision store: event log, review queue, shadow results, API keys."""
