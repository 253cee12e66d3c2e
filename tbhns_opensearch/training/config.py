"""Training configuration: frozen dataclasses read from a TOML or JSON file in `training/`.

A file has top-level optimization keys (`TrainConfig`) and the tables `[data]` (`DataConfig`), `[sampler]`
(`SamplerConfig`) and `[loss]` (`LossConfig`); optionally `[personalization]` (a user model trained on order
sequences after the encoder, `training.personalization`) and `[experimental]` (options that measured level or
worse, kept to reproduce those runs: `training.experimental`). Each field's help is its `metadata["help"]`, which
`tbhns train --help` reads too:

    max_steps = 200
    [data]
    dataset = "amazon-uk-toys"
    queries = "generated"
    [sampler]
    name = "taxonomy"
    leaf = 1
    sibling = 1
    [loss]
    name = "mnrl"

Example:
    >>> TrainConfig(data=DataConfig(dataset="icecat", queries="judgments")).negatives_per_pair
    2
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tbhns_opensearch.catalog.adapters import dataset_dir
from tbhns_opensearch.config import DEFAULT_ENCODER
from tbhns_opensearch.errors import ConfigError
from tbhns_opensearch.taxonomy import TAXONOMY_SOURCES
from tbhns_opensearch.textfiles import read_config_file
from tbhns_opensearch.training.experimental.config import ExperimentalConfig
from tbhns_opensearch.training.losses import DIRECTIONS, HARDNESS_MODES, LOSSES
from tbhns_opensearch.training.negatives import SAMPLERS
from tbhns_opensearch.training.tables import build_table, check_non_negative
from tbhns_opensearch.users.sequences import QUERY_FORMS

PRECISIONS = ("fp32", "bf16")
"""TrainConfig.precision: float32 steps, or bfloat16 autocast where the device has it natively."""
QUERY_SOURCES = ("judgments", "generated", "orders")  # or a path to a labelled-queries JSONL
SAMPLER_PARAMS = {
    "random": (),
    "taxonomy": ("leaf", "sibling", "cousin"),
    "bm25": ("count", "depth"),
    "ance": ("count", "depth", "remine_every"),
}
"""The [sampler] keys each sampler reads (besides cosine_threshold, which all use)."""


@dataclass(frozen=True)
class DataConfig:
    """`[data]`: which catalog, which queries, and how they are split."""

    dataset: str = field(
        default="", metadata={"help": "a public set by name (amazon-uk-toys, icecat, ...); or set `catalog`"}
    )
    catalog: str = field(default="", metadata={"help": "a catalog file (JSONL, CSV, Parquet) instead of a dataset"})
    data_dir: str | None = field(
        default=None, metadata={"help": "folder of `dataset` [default: ../shared/data/<dataset>]"}
    )
    queries: str = field(
        default="generated",
        metadata={
            "help": '"judgments" (the dataset\'s own), "generated" (querygen), "orders" (aisle queries of '
            "[personalization]'s train users) or a labelled-queries JSONL"
        },
    )
    judgments: str = field(
        default="",
        metadata={
            "help": "queries=\"judgments\": a judgments file in the dataset's layout [default: the dataset's own]"
        },
    )
    catalog_limit: int = field(
        default=0,
        metadata={"help": "keep a seeded sample of this many products (judged products first); 0 keeps all"},
    )
    per_product: int = field(default=2, metadata={"help": "generated queries: query kinds tried per product"})
    type_attribute: str = field(
        default="",
        metadata={"help": "attribute naming the product type (query generation, induced:attribute taxonomy)"},
    )
    taxonomy: str = field(
        default="catalog",
        metadata={
            "help": "catalog, assigned (taxonomy_file), induced:attribute (type_attribute) or induced:clustering"
        },
    )
    taxonomy_file: str = field(
        default="", metadata={"help": 'taxonomy="assigned": the JSONL `tbhns taxonomy assign` wrote'}
    )
    taxonomy_levels: int = field(default=2, metadata={"help": "induced:clustering: nested cluster levels (1-3)"})
    min_grade: int = field(
        default=2, metadata={"help": "lowest grade that makes a (query, product) a training positive"}
    )
    relevance_threshold: int = field(
        default=1, metadata={"help": "lowest grade that counts as relevant for Recall in validation and test"}
    )
    validation: float = field(default=0.1, metadata={"help": "fraction of queries in the validation split"})
    test: float = field(
        default=0.1, metadata={"help": "fraction of queries in the test split (never read by training)"}
    )
    unseen_products: bool = field(
        default=True,
        metadata={"help": "drop training pairs whose positive is relevant to a validation/test query"},
    )
    max_eval_relevant: int = field(
        default=0,
        metadata={"help": "drop validation/test queries with more relevant products than this; 0 keeps all"},
    )
    max_positives_per_query: int = field(
        default=0, metadata={"help": "keep at most this many training pairs per query (seeded); 0 keeps all"}
    )
    generated_pairs: int = field(
        default=0,
        metadata={"help": "real queries: also train on generated queries of this many sampled products"},
    )

    def __post_init__(self) -> None:
        if bool(self.dataset) == bool(self.catalog):
            raise ConfigError(
                f"[data] needs exactly one of dataset or catalog, got dataset={self.dataset!r}, "
                f'catalog={self.catalog!r}; e.g. dataset = "amazon-uk-toys"'
            )
        if self.queries not in QUERY_SOURCES and not self.queries.endswith(".jsonl"):
            raise ConfigError(f"[data] queries={self.queries!r}: use {' or '.join(QUERY_SOURCES)} or a .jsonl path")
        if self.queries == "judgments" and not self.dataset:
            raise ConfigError('[data] queries="judgments" needs a dataset with judgments (homedepot, icecat, wands)')
        if self.queries == "orders" and self.dataset != "instacart":
            raise ConfigError(
                f'[data] queries="orders" joins order lines with Instacart\'s catalog, got '
                f'dataset={self.dataset!r}; set dataset = "instacart"'
            )
        if self.queries == "orders" and (self.catalog_limit or self.generated_pairs):
            raise ConfigError(
                f'[data] queries="orders" keeps the products the order lines name and trains on '
                f"their aisle queries only; remove catalog_limit={self.catalog_limit} and "
                f"generated_pairs={self.generated_pairs}"
            )
        if self.taxonomy not in TAXONOMY_SOURCES:
            raise ConfigError(f"[data] taxonomy={self.taxonomy!r}; use one of {', '.join(TAXONOMY_SOURCES)}")
        if (self.taxonomy == "assigned") != bool(self.taxonomy_file):
            raise ConfigError(
                f'[data] taxonomy_file={self.taxonomy_file!r} goes with taxonomy="assigned" and only '
                f"with it (got taxonomy={self.taxonomy!r}); write it with `tbhns taxonomy assign`"
            )
        if self.taxonomy == "induced:attribute" and not self.type_attribute:
            raise ConfigError('[data] taxonomy="induced:attribute" needs type_attribute (e.g. "category")')
        if min(self.relevance_threshold, self.min_grade) < 1:  # positives below the threshold are allowed (graded NDCG)
            raise ConfigError(
                f"[data] relevance_threshold and min_grade must be >= 1 (grade 0 is irrelevant), got "
                f"{self.relevance_threshold} and {self.min_grade}"
            )
        if self.generated_pairs and self.queries == "generated":
            raise ConfigError(
                '[data] generated_pairs adds generated queries to real ones; with queries="generated" '
                "set per_product instead"
            )
        check_non_negative(
            "[data]", self, ("catalog_limit", "max_eval_relevant", "max_positives_per_query", "generated_pairs")
        )

    @property
    def name(self) -> str:
        """A short name for the data: the dataset, else the catalog file's stem."""
        return self.dataset or Path(self.catalog).stem


@dataclass(frozen=True)
class SamplerConfig:
    """`[sampler]`: which negative sampler (`negatives.SAMPLERS`) and its parameters."""

    name: str = field(default="taxonomy", metadata={"help": "random (in-batch only), taxonomy (TB-HNS), bm25 or ance"})
    leaf: int = field(default=1, metadata={"help": "taxonomy: negatives from the positive's leaf"})
    sibling: int = field(default=1, metadata={"help": "taxonomy: negatives under the parent, outside the leaf"})
    cousin: int = field(default=0, metadata={"help": "taxonomy: negatives under the grandparent, outside the parent"})
    count: int = field(default=2, metadata={"help": "bm25 / ance: negatives per pair"})
    depth: int = field(default=30, metadata={"help": "bm25 / ance: hits searched per query"})
    remine_every: int = field(
        default=50, metadata={"help": "ance: re-mine negatives from the current encoder every N steps"}
    )
    cosine_threshold: float = field(
        default=0.95,
        metadata={
            "help": "candidates this close to the positive (base-encoder cosine) are near-duplicates, never negatives"
        },
    )
    alias: str = field(
        default="",
        metadata={
            "help": "bm25 and [experimental.distill]: alias of the training catalog on OpenSearch "
            "[default: train-<data>-<fingerprint>]"
        },
    )

    def __post_init__(self) -> None:
        if self.name not in SAMPLERS:
            raise ConfigError(f"[sampler] name={self.name!r} is unknown; valid names: {', '.join(SAMPLERS)}")
        check_non_negative("[sampler]", self, ("leaf", "sibling", "cousin", "count", "depth", "remine_every"))

    @property
    def params(self) -> dict[str, float]:
        """The parameters this sampler reads, e.g. {"leaf": 1, "sibling": 1, "cousin": 0, "cosine_threshold": 0.95}."""
        return {name: getattr(self, name) for name in (*SAMPLER_PARAMS[self.name], "cosine_threshold")}

    @property
    def negatives_per_pair(self) -> int:
        """Explicit negatives per training row (0 for random: in-batch negatives only)."""
        return {"random": 0, "taxonomy": self.leaf + self.sibling + self.cousin}.get(self.name, self.count)


@dataclass(frozen=True)
class LossConfig:
    """`[loss]`: which training loss (`losses.LOSSES`) and its parameters.

    Example:
        >>> LossConfig(name="cached_mnrl", mini_batch_size=4).scale
        20.0
    """

    name: str = field(
        default="mnrl",
        metadata={
            "help": "mnrl (MultipleNegativesRankingLoss), cached_mnrl (the same, gradient-cached) or margin (cosine "
            "TripletLoss); masked_mnrl is experimental ([experimental] mask_*)"
        },
    )
    scale: float = field(
        default=20.0,
        metadata={"help": "mnrl / cached_mnrl / masked_mnrl: similarity scale (inverse temperature)"},
    )
    directions: tuple[str, ...] = field(
        default=("query_to_doc",),
        metadata={"help": "mnrl / cached_mnrl: the softmax's terms (losses.DIRECTIONS); all four: GTE's loss"},
    )
    hardness_mode: str = field(
        default="none",
        metadata={
            "help": "mnrl / cached_mnrl: which negatives' logits gain hardness_strength x their cosine "
            "(losses.HARDNESS_MODES)"
        },
    )
    hardness_strength: float = field(
        default=0.0, metadata={"help": "mnrl / cached_mnrl: that weight (EmbeddingGemma: 5 on hard negatives)"}
    )
    margin: float = field(
        default=0.3, metadata={"help": "margin: cosine-distance margin between positive and negative"}
    )
    mini_batch_size: int = field(
        default=8, metadata={"help": "cached_mnrl: rows per forward chunk (memory, not results)"}
    )
    gather_across_devices: bool = field(
        default=True,
        metadata={
            "help": "mnrl / cached_mnrl on several processes (torchrun, --nproc): every process's rows are in-batch "
            "negatives of every query (the loss sees the whole batch, as in one process); false: each process's own"
        },
    )

    def __post_init__(self) -> None:
        if self.name not in LOSSES:
            raise ConfigError(f"loss={self.name!r} is unknown; valid losses: {', '.join(LOSSES)} ([loss] name)")
        object.__setattr__(self, "directions", tuple(self.directions))  # a TOML array arrives as a list
        if "query_to_doc" not in self.directions or not set(self.directions) <= set(DIRECTIONS):
            raise ConfigError(
                f'[loss] directions={list(self.directions)}: list "query_to_doc" and any of {", ".join(DIRECTIONS[1:])}'
            )
        if self.hardness_mode not in HARDNESS_MODES:
            raise ConfigError(
                f"[loss] hardness_mode={self.hardness_mode!r} is unknown; use one of {', '.join(HARDNESS_MODES)}"
            )
        tuned = [
            name
            for name, on in (
                ("directions", self.directions != ("query_to_doc",)),
                ("hardness_mode", self.hardness_mode != "none"),
            )
            if on
        ]
        if tuned and self.name not in ("mnrl", "cached_mnrl"):
            raise ConfigError(
                f'[loss] {" and ".join(tuned)}: only with loss "mnrl" or "cached_mnrl", not {self.name!r}'
            )
        if self.mini_batch_size < 1:
            raise ConfigError(f"[loss] {{'mini_batch_size': {self.mini_batch_size}}} must be at least 1")
        check_non_negative("[loss]", self, ("hardness_strength",))


@dataclass(frozen=True)
class PersonalizationTrainConfig:
    """`[personalization]`: a user model (`users.attention`) trained on REAL order sequences after the encoder,
    on its vectors, saved beside it (`training.personalization`). The device is the run's `device`.

    Example:
        >>> PersonalizationTrainConfig(order_lines="order_lines.csv").max_history
        50
    """

    order_lines: str = field(
        default="", metadata={"help": "order-lines CSV in Instacart's layout (users.sequences.ORDER_LINE_COLUMNS)"}
    )
    products: str = field(
        default="",
        metadata={
            "help": "folder of Instacart's products.csv that names the lines [default: [data]'s instacart folder]"
        },
    )
    max_history: int = field(default=50, metadata={"help": "purchases the model attends to, most recent first"})
    epochs: int = field(
        default=6,
        metadata={"help": "passes over the training examples (the best validation epoch is kept; 0: untrained)"},
    )
    batch_size: int = field(
        default=256, metadata={"help": "examples per step; the others' positives are in-batch negatives"}
    )
    learning_rate: float = field(default=1e-3, metadata={"help": "Adam's learning rate"})
    temperature: float = field(default=0.05, metadata={"help": "softmax temperature of the contrastive loss"})
    same_aisle: int = field(default=8, metadata={"help": "TB-HNS negatives per example from the positive's aisle"})
    sibling_aisles: int = field(
        default=4, metadata={"help": "TB-HNS negatives per example from the other aisles of its department"}
    )
    query_form: str = field(
        default="aisle", metadata={"help": 'query text: "aisle" or "path" (department > aisle); derived, not typed'}
    )
    seed: int = field(default=0, metadata={"help": "seeds the user split, the weights and every draw"})
    validation: float = field(
        default=0.2, metadata={"help": "share of users in the validation split (users.sequences.user_split)"}
    )
    test: float = field(default=0.2, metadata={"help": "share of users held out for testing (never read by training)"})

    def __post_init__(self) -> None:
        if not self.order_lines:
            raise ConfigError(
                "[personalization] needs order_lines, e.g. order_lines = "
                '"../shared/data/instacart-sequences/order_lines.csv"'
            )
        bad = {
            name: getattr(self, name)
            for name in ("max_history", "batch_size")
            if isinstance(getattr(self, name), bool)
            or not isinstance(getattr(self, name), int)
            or getattr(self, name) < (2 if name == "batch_size" else 1)
        }
        if bad:
            raise ConfigError(f"[personalization] {bad}: max_history must be a whole number >= 1 and batch_size >= 2")
        if not (self.learning_rate > 0 and self.temperature > 0):
            raise ConfigError(
                f"[personalization] learning_rate={self.learning_rate} and temperature="
                f"{self.temperature} must be positive, e.g. 1e-3 and 0.05"
            )
        check_non_negative("[personalization]", self, ("epochs", "same_aisle", "sibling_aisles"))
        if self.query_form not in QUERY_FORMS:
            raise ConfigError(f"[personalization] query_form={self.query_form!r}; use one of {', '.join(QUERY_FORMS)}")
        if not (0 < self.validation < 1 and 0 < self.test < 1 and self.validation + self.test < 1):
            raise ConfigError(
                f"[personalization] validation={self.validation} and test={self.test}: give shares of "
                "users above 0 (validation picks the epoch, test is held out) that leave users for "
                "training (sum below 1), e.g. 0.2 and 0.2"
            )


@dataclass(frozen=True)
class TrainConfig:
    """A training run: data, sampler, loss, model and optimization (the top-level keys of the file)."""

    data: DataConfig = field(metadata={"help": "[data]: the catalog, the queries and their split"})
    sampler: SamplerConfig = field(
        default_factory=SamplerConfig, metadata={"help": "[sampler]: the negative sampler and its parameters"}
    )
    loss: LossConfig = field(default_factory=LossConfig, metadata={"help": "[loss]: the loss and its parameters"})
    base_model: str = field(default=DEFAULT_ENCODER, metadata={"help": "sentence-transformers path or hub name"})
    batch_size: int = field(default=16, metadata={"help": "rows per step"})
    max_steps: int = field(
        default=200,
        metadata={"help": "optimizer steps; 0 exports the base model unchanged (validated, e.g. under a user model)"},
    )
    learning_rate: float = field(default=2e-5, metadata={"help": "AdamW peak learning rate"})
    warmup_ratio: float = field(default=0.1, metadata={"help": "share of max_steps with linear warmup"})
    max_seq_length: int = field(default=64, metadata={"help": "tokens per text (short keeps CPU training fast)"})
    eval_every: int = field(default=50, metadata={"help": "validate every N steps (and at step 0 and the last step)"})
    patience: int = field(
        default=3,
        metadata={"help": "stop after this many validations without improvement; 0 never stops early"},
    )
    select_metric: str = field(default="recall@24", metadata={"help": "validation metric that picks the best step"})
    restore_best: bool = field(
        default=True,
        metadata={"help": "end with the best validated weights (step 0 = base model); false keeps the last step's"},
    )
    seed: int = field(default=13, metadata={"help": "seeds torch, the data order, splits and samplers"})
    device: str = field(default="cpu", metadata={"help": "torch device: cpu, cuda, cuda:1, mps"})
    precision: str = field(
        default="fp32",
        metadata={
            "help": "fp32, or bf16: training steps under bfloat16 autocast, on a CPU with AMX / AVX-512 BF16 or a "
            "bf16 GPU (refused elsewhere); validation and export stay fp32"
        },
    )
    output_dir: str = field(
        default="", metadata={"help": "the model directory `tbhns train` writes; empty: runs/train/<config name>"}
    )
    checkpoint_every: int = field(
        default=0,
        metadata={
            "help": "save a checkpoint every N steps in <output_dir>/checkpoints (weights, optimizer, scheduler, RNG "
            "states, the negatives' position, the best step so far), which `tbhns train --resume` continues from; "
            "the newest and the best are kept; 0: none"
        },
    )
    quantize: bool = field(default=True, metadata={"help": "also export an int8 dynamically quantized ONNX variant"})
    int8_tolerance: float = field(
        default=0.01,
        metadata={"help": "int8 is accepted when no validation NDCG@10 / R@24 falls more than this vs fp32"},
    )
    personalization: PersonalizationTrainConfig | None = field(
        default=None, metadata={"help": "[personalization]: a user model trained after the encoder; None: none"}
    )
    experimental: ExperimentalConfig = field(
        default_factory=ExperimentalConfig,
        metadata={"help": "[experimental]: options that measured level or worse, kept for reproduction"},
    )

    def __post_init__(self) -> None:
        self.experimental.check_loss(self.loss.name)
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision={self.precision!r} is unknown; use one of {', '.join(PRECISIONS)}")
        if self.loss.name == "margin" and self.negatives_per_pair != 1:
            raise ConfigError(
                f'[loss] name="margin" takes exactly one negative per row, the {self.sampler.name!r} '
                f'sampler gives {self.negatives_per_pair}; set its counts to 1 or use name = "mnrl"'
            )
        positive = ("batch_size", "max_seq_length", "eval_every")
        bad = {name: getattr(self, name) for name in positive if getattr(self, name) < 1}
        if bad:
            raise ConfigError(f"{bad} must be at least 1")
        if self.batch_size < 2:
            raise ConfigError(f"batch_size={self.batch_size}: in-batch negatives need at least 2 rows per batch")
        if not 0 <= self.warmup_ratio < 1 or self.learning_rate <= 0:
            raise ConfigError(
                f"need 0 <= warmup_ratio < 1 and learning_rate > 0, got {self.warmup_ratio}, {self.learning_rate}"
            )
        check_non_negative("", self, ("max_steps", "patience", "int8_tolerance", "checkpoint_every"))
        if self.data.queries == "orders" and self.personalization is None:
            raise ConfigError(
                '[data] queries="orders" derives queries from the train users of '
                "[personalization] order_lines; add that table"
            )
        if self.personalization is not None and not self.personalization.products:
            folder = dataset_dir("instacart", self.data.data_dir if self.data.dataset == "instacart" else None)
            object.__setattr__(self, "personalization", replace(self.personalization, products=str(folder)))

    @property
    def negatives_per_pair(self) -> int:
        return self.sampler.negatives_per_pair

    def with_overrides(self, **overrides: Any) -> TrainConfig:
        """A copy with the given top-level fields replaced; None values are ignored (CLI flags left unset).

        Example:
            >>> TrainConfig(data=DataConfig(dataset="icecat")).with_overrides(max_steps=5, device=None).max_steps
            5
        """
        return replace(self, **{key: value for key, value in overrides.items() if value is not None})


MOVED_KEYS = {
    "loss": "[loss] as name",  # a string; [loss] is the table
    **dict.fromkeys(
        ("scale", "directions", "hardness_mode", "hardness_strength", "margin", "mini_batch_size"), "[loss]"
    ),
    **dict.fromkeys(("batching", "mask_guide", "mask_margin", "mask_strategy"), "[experimental]"),
    "stage2": "[experimental.stage2]",
    "distill": "[experimental.distill]",
}
"""Top-level keys and tables of older configs -> the table they moved to."""


def load_train_config(path: str | Path) -> TrainConfig:
    """Read a TOML or JSON training config; unknown keys and bad values raise `ConfigError`.

    Example:
        >>> load_train_config("training/toys-taxonomy.toml").sampler.name  # doctest: +SKIP
        'taxonomy'
    """
    path = Path(path)
    raw = read_config_file(path, "training config", "training/*.toml")
    _refuse_moved_keys(raw, path)
    data = build_table(DataConfig, raw.pop("data", None), f"{path} [data]")
    sampler = build_table(SamplerConfig, raw.pop("sampler", {}), f"{path} [sampler]")
    loss = build_table(LossConfig, raw.pop("loss", {}), f"{path} [loss]")
    experimental = ExperimentalConfig.from_table(raw.pop("experimental", {}), f"{path} [experimental]")
    personalization = (
        build_table(PersonalizationTrainConfig, raw.pop("personalization"), f"{path} [personalization]")
        if "personalization" in raw
        else None
    )
    tables = {
        "data": data,
        "sampler": sampler,
        "loss": loss,
        "experimental": experimental,
        "personalization": personalization,
    }
    config = build_table(TrainConfig, {**raw, **tables}, str(path))
    return config if config.output_dir else replace(config, output_dir=str(Path("runs") / "train" / path.stem))


def _refuse_moved_keys(raw: dict[str, Any], path: Path) -> None:
    """One `ConfigError` naming every key of an older layout and the table it moved to (`MOVED_KEYS`)."""
    moved = [key for key in raw if key in MOVED_KEYS and not (key == "loss" and isinstance(raw[key], dict))]
    if moved:
        named = ", ".join(_moved(key, raw[key]) for key in moved)
        raise ConfigError(f"{path}: {named}; move each there (training/*.toml show the layout)")


def _moved(key: str, value: Any) -> str:
    """One moved key, as the error names it: 'loss = "mnrl" moved to [loss] as name = "mnrl"', '[stage2] moved to
    [experimental.stage2]', 'scale moved to [loss]'."""
    if key == "loss":
        return f"loss = {json.dumps(value)} moved to [loss] as name = {json.dumps(value)}"
    return f"{f'[{key}]' if isinstance(value, dict) else key} moved to {MOVED_KEYS[key]}"
