"""liveguard simulations."""
