"""What the model card says of the experimental options: under "Negatives" the false-negative mask's counts and
the hybrid teacher, under "Training" the ROAR stage. `training.card` calls both for every card; each gives no
line for an option the run left off.

`config` is the card's config (the run's `TrainConfig` as a dict), `training` the card's training section.

Example:
    >>> negatives_lines({"experimental": {"distill": None}}, {"loss_counts": {}}), training_lines({}, {})
    ([], [])
"""

from __future__ import annotations

from typing import Any


def negatives_lines(config: dict[str, Any], training: dict[str, Any]) -> list[str]:
    """The mask's share of masked negatives (loss masked_mnrl) and the teacher's settings (`[experimental.distill]`)."""
    options, lines = config.get("experimental") or {}, []
    counts = training.get("loss_counts") or {}
    if counts.get("negatives"):
        lines.append(
            f"- false-negative mask ({options['mask_guide']} guide, {options['mask_strategy']} "
            f"margin {options['mask_margin']}): {counts['masked_negatives']} of {counts['negatives']} "
            f"in-batch and explicit negatives masked ({counts['masked_negatives'] / counts['negatives']:.2%})"
        )
    if distill := options.get("distill"):
        lines.append(
            f"- distilled from a hybrid teacher (BM25 weight {distill['bm25_weight']}, encoder "
            f"{distill.get('encoder') or config['base_model']}, depth {distill['depth']}): "
            f"{distill['candidates']} ranked candidates per row, weight "
            f"{distill['weight']}, teacher temperature {distill['teacher_temperature']}"
        )
    return lines


def training_lines(config: dict[str, Any], training: dict[str, Any]) -> list[str]:
    """The ROAR stage (`[experimental.stage2]`): its settings, steps, best step and time."""
    stage2, settings = training.get("stage2"), (config.get("experimental") or {}).get("stage2")
    if not stage2 or not settings:
        return []
    contrast = f" + {settings['contrast']} x in-batch contrast" if settings.get("contrast") else ""
    return [
        f"- stage 2, ROAR{contrast} on graded groups ({stage2['rows']} queries, group size {settings['group_size']}, "
        f"lowest group {settings.get('lowest', 'unjudged')}, margin {settings['margin']}, lr "
        f"{settings['learning_rate']}): {stage2['steps']} of {settings['max_steps']} "
        f"steps, best validation at stage-2 step {stage2['best_step']} (0: stage 1's weights kept), "
        f"{stage2['wall_s']:.0f} s"
    ]
