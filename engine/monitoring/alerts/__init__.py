"""Off-box alert delivery: apprise channels, the outbox and its sender, dedup/rate limits, escalation, summary."""
