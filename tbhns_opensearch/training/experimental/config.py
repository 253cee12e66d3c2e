"""The `[experimental]` table of a training config (`ExperimentalConfig`), with its `[experimental.stage2]` and
`[experimental.distill]` sub-tables. Every option here is off by default; see the package docstring for why
they are kept apart.

    [loss]
    name = "masked_mnrl"          # the false-negative mask, set below
    [experimental]
    mask_guide = "base"
    mask_margin = 0.05
    [experimental.stage2]         # ROAR after the contrastive stage
    max_steps = 150

Example:
    >>> options = ExperimentalConfig.from_table({"batching": "taxonomy", "stage2": {"max_steps": 7}}, "[experimental]")
    >>> options.batching, options.stage2.max_steps, options.distill
    ('taxonomy', 7, None)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tbhns_opensearch.errors import ConfigError
from tbhns_opensearch.training.tables import build_table, check_non_negative

BATCHINGS = ("shuffled", "taxonomy")
"""How stage 1's rows are batched: shuffled, or batches of taxonomy neighbours (`topic_batches`)."""
LOWEST_GROUPS = ("unjudged", "taxonomy")
"""Where ROAR's lowest group comes from when a query has no product graded 0."""


@dataclass(frozen=True)
class PreferenceConfig:
    """`[experimental.stage2]`: ROAR on graded groups, after the contrastive stage, from its best weights."""

    max_steps: int = field(default=100, metadata={"help": "optimizer steps of stage 2"})
    learning_rate: float = field(default=1e-5, metadata={"help": "AdamW peak learning rate of stage 2"})
    batch_size: int = field(default=16, metadata={"help": "queries per step"})
    group_size: int = field(default=8, metadata={"help": "products per query (all grades kept, then sampled; padded)"})
    unjudged: int = field(
        default=2, metadata={"help": "unjudged products as the lowest group when a query has no product graded 0"}
    )
    lowest: str = field(
        default="unjudged",
        metadata={
            "help": 'the lowest group when no product is graded 0: "unjudged" (random) or "taxonomy" (stage 1\'s '
            "sampler)"
        },
    )
    margin: float = field(
        default=1.0, metadata={"help": "ROAR: logit margin per grade of difference between consecutive groups"}
    )
    contrast: float = field(
        default=0.0,
        metadata={"help": "weight of an in-batch contrastive term beside ROAR (each row's top product vs other rows')"},
    )
    eval_every: int = field(default=50, metadata={"help": "validate every N steps of stage 2"})

    def __post_init__(self) -> None:
        positive = ("max_steps", "batch_size", "eval_every", "learning_rate")
        bad = {name: getattr(self, name) for name in positive if getattr(self, name) <= 0}
        if bad or self.group_size < 2:
            raise ConfigError(f"[stage2] {bad or {'group_size': self.group_size}} must be positive (group_size >= 2)")
        check_non_negative("[stage2]", self, ("unjudged", "margin", "contrast"))
        if self.lowest not in LOWEST_GROUPS:
            raise ConfigError(f"[stage2] lowest = {self.lowest!r}: use one of {', '.join(LOWEST_GROUPS)}")


@dataclass(frozen=True)
class DistillConfig:
    """`[experimental.distill]`: beside the contrastive loss, pull the student toward the hybrid's ranking of each
    training query (`teacher.HybridTeacher`, `distill_loss.DistilledLoss`)."""

    candidates: int = field(
        default=4, metadata={"help": "hybrid-ranked products per row the teacher scores (besides the positive)"}
    )
    depth: int = field(
        default=24,
        metadata={
            "help": "hits per sub-query of the teacher's hybrid (BM25 and the encoder), and the fused products kept"
        },
    )
    bm25_weight: float = field(
        default=0.6,
        metadata={"help": "the teacher hybrid's BM25 weight (the served default); the encoder gets the rest"},
    )
    weight: float = field(
        default=1.0,
        metadata={"help": "the distillation term's weight beside the contrastive loss (1: the same gradient scale)"},
    )
    teacher_temperature: float = field(
        default=0.1, metadata={"help": "softmax temperature over the teacher's fused scores (in [0, 1])"}
    )
    encoder: str = field(
        default="",
        metadata={"help": "the teacher hybrid's encoder (a model path or name) [default: base_model, as it starts]"},
    )

    def __post_init__(self) -> None:
        if self.candidates < 1 or self.depth < 1 or self.teacher_temperature <= 0:
            raise ConfigError(
                f"[distill] candidates, depth and teacher_temperature must be positive, got "
                f"{self.candidates}, {self.depth}, {self.teacher_temperature}"
            )
        if not 0 <= self.bm25_weight <= 1:
            raise ConfigError(f"[distill] bm25_weight={self.bm25_weight}: use a weight in [0, 1]")
        check_non_negative("[distill]", self, ("weight",))


@dataclass(frozen=True)
class ExperimentalConfig:
    """`[experimental]`: options that measured level with the recipe or worse; all off by default."""

    batching: str = field(
        default="shuffled",
        metadata={"help": '"shuffled" rows, or "taxonomy": each batch of rows whose positives are taxonomy neighbours'},
    )
    mask_guide: str = field(
        default="base",
        metadata={
            "help": 'loss masked_mnrl: who scores candidates, "base" (frozen base model) or "self" (the model trained)'
        },
    )
    mask_margin: float = field(
        default=0.05,
        metadata={"help": "loss masked_mnrl: negatives the guide scores above (positive - margin) are left out"},
    )
    mask_strategy: str = field(
        default="absolute",
        metadata={
            "help": 'loss masked_mnrl: margin in cosine ("absolute") or as a share of the positive\'s score '
            '("relative")'
        },
    )
    stage2: PreferenceConfig | None = field(
        default=None, metadata={"help": "a ROAR stage after the contrastive one ([experimental.stage2]); None: one"}
    )
    distill: DistillConfig | None = field(
        default=None,
        metadata={"help": "a hybrid teacher beside the contrastive loss ([experimental.distill]); None: none"},
    )

    def __post_init__(self) -> None:
        if self.batching not in BATCHINGS:
            raise ConfigError(
                f"[experimental] batching={self.batching!r} is unknown; use one of {', '.join(BATCHINGS)}"
            )

    @classmethod
    def from_table(cls, values: Any, where: str) -> ExperimentalConfig:
        """The `[experimental]` table `values` (`where` names it in errors), its sub-tables read too."""
        if not isinstance(values, dict):
            raise ConfigError(f'{where}: not a table; e.g. [experimental] with batching = "taxonomy"')
        tables = {"stage2": PreferenceConfig, "distill": DistillConfig}
        read = {
            name: build_table(tables[name], value, f"{where} [{name}]")
            for name, value in values.items()
            if name in tables
        }
        return build_table(cls, {**values, **read}, where)

    def check_loss(self, loss: str) -> None:
        """Checks that need the run's loss name: distillation adds to `mnrl` only."""
        if self.distill is not None and loss != "mnrl":
            raise ConfigError(f'[distill] adds to loss "mnrl", not {loss!r}; set [loss] name = "mnrl"')
