"""Brokers: paper fills against the source, live orders through ccxt."""
