"""Backtester, metrics, trial registry, lookahead check, walk-forward optimisation and reports."""
