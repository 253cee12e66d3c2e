"""Training: pairs from the training split, query generation, negative samplers (random, taxonomy, bm25, ANCE),
losses (MNRL, the false-negative mask, ROAR), the trainer and its monitor, the model card and the pipeline."""
