"""Contracts, config, settings, observability and AWS adapters shared by every stage."""
