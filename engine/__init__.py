"""liveguard engine."""
