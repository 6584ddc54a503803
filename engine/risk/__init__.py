"""Bet sizing, toxicity, liquidity, limits, emergency triggers and the persisted trading state."""
