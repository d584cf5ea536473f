"""Lambda code: one importable package, one code asset."""
