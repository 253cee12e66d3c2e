"""Experimental training options: tried, measured level with the recipe or worse, kept to reproduce those runs.

- `masked_loss`: the false-negative margin mask (`[loss] name = "masked_mnrl"`, arXiv 2606.01504 stage 1);
- `roar`, `graded`, `preference`: a second, preference stage of ROAR on graded groups (`[experimental.stage2]`,
  arXiv 2606.01504 stage 2);
- `teacher`, `distill_loss`: distillation from the hybrid's ranking beside the contrastive loss
  (`[experimental.distill]`);
- `topic_batches`: batches of taxonomy neighbours instead of shuffled rows (`[experimental] batching`).

They are set in a config's `[experimental]` table (`config.ExperimentalConfig`) and reached from the main path
through one seam, `hooks.Experiments` (and `hooks.masked_mnrl`, the entry of `training.losses.LOSSES`). No shipped
recipe uses them but `training/homedepot-two-stage.toml`, the record of the paper's two stages.

What each measured, with the command that reproduces it: docs/training.md ("What helped and what did not"),
training/README.md, and under benchmarks/results/ (two-stage/, masked-self/, masked0/, homedepot-mask.md,
recipe-roar/, roar-contrast/, grouped/, distill/, homedepot-distill.md).
"""
