"""liveguard governance."""
