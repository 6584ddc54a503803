"""ML overlay: triple-barrier labels, purged CV, meta-model, model registry and retraining."""
