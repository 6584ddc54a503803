"""Market data: sources (simulated exchange, ccxt, csv, feeds), validation and ingest jobs."""
