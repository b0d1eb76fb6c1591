"""liveguard detectors."""
