"""Pipeline definitions: wiring only (which component feeds which, loops, conditions)."""
