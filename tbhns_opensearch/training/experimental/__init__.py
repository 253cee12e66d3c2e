"""Experimental training options: tried, measured level with the recipe or worse, kept to reproduce those runs.

- `masked_loss`: the false-negative margin mask (loss `masked_mnrl`, arXiv 2606.01504 stage 1);
- `roar`, `graded`: a second, preference stage of ROAR on graded groups (arXiv 2606.01504 stage 2);
- `teacher`, `distill_loss`: distillation from the hybrid's ranking beside the contrastive loss;
- `topic_batches`: batches of taxonomy neighbours instead of shuffled rows.

No shipped recipe but `training/homedepot-two-stage.toml` (the paper's two stages, kept as the record of that
experiment) uses them. What each measured, with the command that reproduces it, is in training/README.md ("Two-stage
training", "Two-stage results: negative so far" and the Home Depot levers) and under benchmarks/results/ (two-stage/,
masked-self/, masked0/, homedepot-mask.md, recipe-roar/, roar-contrast/, grouped/, distill/, homedepot-distill.md).
"""
