"""Training: examples and splits, query generation, negative samplers, personalization, trainer, export."""
