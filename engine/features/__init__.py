"""Point-in-time features, compression and feature importance."""
