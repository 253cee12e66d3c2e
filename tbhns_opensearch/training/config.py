"""Training configuration: frozen dataclasses read from a TOML or JSON file in `training/`.

A file has top-level training keys and two tables, `[data]` and `[sampler]`, and optionally `[stage2]`
(a ROAR preference stage after the contrastive one), `[distill]` (a hybrid teacher beside it) and
`[personalization]` (a user model trained on order sequences after the encoder, `training.personalization`):

    base_model = "all-MiniLM-L6-v2"
    max_steps = 200
    [data]
    dataset = "amazon-uk-toys"
    queries = "generated"
    [sampler]
    name = "taxonomy"
    leaf = 1
    sibling = 1

Example:
    >>> TrainConfig(data=DataConfig(dataset="icecat", queries="judgments")).negatives_per_pair
    2
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from tbhns_opensearch.catalog.adapters import dataset_dir
from tbhns_opensearch.errors import ConfigError
from tbhns_opensearch.taxonomy import TAXONOMY_SOURCES
from tbhns_opensearch.training.losses import DIRECTIONS, HARDNESS_MODES, LOSSES
from tbhns_opensearch.training.negatives import SAMPLERS
from tbhns_opensearch.users.sequences import QUERY_FORMS

BATCHINGS = (
    "shuffled",
    "taxonomy",
)  # TrainConfig.batching: shuffled rows, or batches of taxonomy neighbours (topic_batches)
PRECISIONS = (
    "fp32",
    "bf16",
)  # TrainConfig.precision: float32 steps, or bfloat16 autocast where the device has it natively
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
    """Which catalog, which queries, and how they are split."""

    dataset: str = ""  # a public set by name (amazon-uk-toys, icecat, ...); or set `catalog`
    catalog: str = ""  # a catalog file (JSONL, CSV, Parquet) instead of a dataset
    data_dir: str | None = None  # folder of `dataset` [default: ../shared/data/<dataset>]
    # "judgments" (the dataset's own), "generated" (querygen), "orders" (aisle queries of [personalization]'s train
    # users) or a labelled-queries JSONL
    queries: str = "generated"
    judgments: str = ""  # queries="judgments": a judgments file in the dataset's layout [default: the dataset's own]
    catalog_limit: int = 0  # keep a seeded sample of this many products (judged products first); 0 keeps all
    per_product: int = 2  # generated queries: query kinds tried per product
    type_attribute: str = ""  # attribute naming the product type (query generation, induced:attribute taxonomy)
    taxonomy: str = (
        "catalog"  # catalog, assigned (taxonomy_file), induced:attribute (type_attribute) or induced:clustering
    )
    taxonomy_file: str = ""  # taxonomy="assigned": the JSONL `tbhns taxonomy assign` wrote
    taxonomy_levels: int = 2  # induced:clustering: nested cluster levels (1-3)
    min_grade: int = 2  # lowest grade that makes a (query, product) a training positive
    relevance_threshold: int = 1  # lowest grade that counts as relevant for Recall in validation and test
    validation: float = 0.1  # fraction of queries in the validation split
    test: float = 0.1  # fraction of queries in the test split (never read by training)
    unseen_products: bool = True  # drop training pairs whose positive is relevant to a validation/test query
    max_eval_relevant: int = 0  # drop validation/test queries with more relevant products than this; 0 keeps all
    max_positives_per_query: int = 0  # keep at most this many training pairs per query (seeded); 0 keeps all
    generated_pairs: int = 0  # real queries: also train on generated queries of this many sampled products

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
        _check_non_negative(
            "[data]", self, ("catalog_limit", "max_eval_relevant", "max_positives_per_query", "generated_pairs")
        )

    @property
    def name(self) -> str:
        """A short name for the data: the dataset, else the catalog file's stem."""
        return self.dataset or Path(self.catalog).stem


@dataclass(frozen=True)
class SamplerConfig:
    """Which negative sampler (`negatives.SAMPLERS`) and its parameters."""

    name: str = "taxonomy"  # random (in-batch only), taxonomy (TB-HNS), bm25 or ance
    leaf: int = 1  # taxonomy: negatives from the positive's leaf
    sibling: int = 1  # taxonomy: negatives under the parent, outside the leaf
    cousin: int = 0  # taxonomy: negatives under the grandparent, outside the parent
    count: int = 2  # bm25 / ance: negatives per pair
    depth: int = 30  # bm25 / ance: hits searched per query
    remine_every: int = 50  # ance: re-mine negatives from the current encoder every N steps
    cosine_threshold: float = 0.95  # candidates this close to the positive (base-encoder cosine) are near-duplicates
    alias: str = (
        ""  # bm25 and [distill]: alias of the training catalog on OpenSearch [default: train-<data>-<fingerprint>]
    )

    def __post_init__(self) -> None:
        if self.name not in SAMPLERS:
            raise ConfigError(f"[sampler] name={self.name!r} is unknown; valid names: {', '.join(SAMPLERS)}")
        _check_non_negative("[sampler]", self, ("leaf", "sibling", "cousin", "count", "depth", "remine_every"))

    @property
    def params(self) -> dict[str, float]:
        """The parameters this sampler reads, e.g. {"leaf": 1, "sibling": 1, "cousin": 0, "cosine_threshold": 0.95}."""
        return {name: getattr(self, name) for name in (*SAMPLER_PARAMS[self.name], "cosine_threshold")}

    @property
    def negatives_per_pair(self) -> int:
        """Explicit negatives per training row (0 for random: in-batch negatives only)."""
        return {"random": 0, "taxonomy": self.leaf + self.sibling + self.cousin}.get(self.name, self.count)


LOWEST_GROUPS = ("unjudged", "taxonomy")
"""Where ROAR's lowest group comes from when a query has no product graded 0."""


@dataclass(frozen=True)
class PreferenceConfig:
    """Stage 2 (`[stage2]`): ROAR on graded groups, after the contrastive stage, from its best weights."""

    max_steps: int = 100  # optimizer steps of stage 2
    learning_rate: float = 1e-5  # AdamW peak learning rate of stage 2
    batch_size: int = 16  # queries per step
    group_size: int = 8  # products per query (all grades kept, then sampled; padded)
    unjudged: int = 2  # unjudged products as the lowest group when a query has no product graded 0
    # the lowest group when no product is graded 0: "unjudged" (random) or "taxonomy" (stage 1's sampler)
    lowest: str = "unjudged"
    margin: float = 1.0  # ROAR: logit margin per grade of difference between consecutive groups
    contrast: float = 0.0  # weight of an in-batch contrastive term beside ROAR (each row's top product vs other rows')
    eval_every: int = 50  # validate every N steps of stage 2

    def __post_init__(self) -> None:
        positive = ("max_steps", "batch_size", "eval_every", "learning_rate")
        bad = {name: getattr(self, name) for name in positive if getattr(self, name) <= 0}
        if bad or self.group_size < 2:
            raise ConfigError(f"[stage2] {bad or {'group_size': self.group_size}} must be positive (group_size >= 2)")
        _check_non_negative("[stage2]", self, ("unjudged", "margin", "contrast"))
        if self.lowest not in LOWEST_GROUPS:
            raise ConfigError(f"[stage2] lowest = {self.lowest!r}: use one of {', '.join(LOWEST_GROUPS)}")


@dataclass(frozen=True)
class DistillConfig:
    """`[distill]`: beside the contrastive loss, pull the student toward the hybrid's ranking of each training
    query (`teacher.HybridTeacher`, `distill_loss.DistilledLoss`)."""

    candidates: int = 4  # hybrid-ranked products per row the teacher scores (besides the positive)
    depth: int = 24  # hits per sub-query of the teacher's hybrid (BM25 and the encoder), and the fused products kept
    bm25_weight: float = 0.6  # the teacher hybrid's BM25 weight (the served default); the encoder gets the rest
    weight: float = 1.0  # the distillation term's weight beside the contrastive loss (1: the same gradient scale)
    teacher_temperature: float = 0.1  # softmax temperature over the teacher's fused scores (in [0, 1])
    encoder: str = ""  # the teacher hybrid's encoder (a model path or name) [default: base_model, as it starts]

    def __post_init__(self) -> None:
        if self.candidates < 1 or self.depth < 1 or self.teacher_temperature <= 0:
            raise ConfigError(
                f"[distill] candidates, depth and teacher_temperature must be positive, got "
                f"{self.candidates}, {self.depth}, {self.teacher_temperature}"
            )
        if not 0 <= self.bm25_weight <= 1:
            raise ConfigError(f"[distill] bm25_weight={self.bm25_weight}: use a weight in [0, 1]")
        _check_non_negative("[distill]", self, ("weight",))


@dataclass(frozen=True)
class PersonalizationTrainConfig:
    """`[personalization]`: a user model (`users.attention`) trained on REAL order sequences after the encoder,
    on its vectors, saved beside it (`training.personalization`). The device is the run's `device`.

    Example:
        >>> PersonalizationTrainConfig(order_lines="order_lines.csv").max_history
        50
    """

    order_lines: str = ""  # order-lines CSV in Instacart's layout (users.sequences.ORDER_LINE_COLUMNS)
    products: str = ""  # folder of Instacart's products.csv that names the lines [default: [data]'s instacart folder]
    max_history: int = 50  # purchases the model attends to, most recent first
    epochs: int = 6  # passes over the training examples (the best validation epoch is kept; 0: untrained)
    batch_size: int = 256  # examples per step; the others' positives are in-batch negatives
    learning_rate: float = 1e-3  # Adam's
    temperature: float = 0.05  # softmax temperature of the contrastive loss
    same_aisle: int = 8  # TB-HNS negatives per example from the positive's aisle
    sibling_aisles: int = 4  # TB-HNS negatives per example from the other aisles of its department
    query_form: str = "aisle"  # query text: "aisle" or "path" (department > aisle); derived, not typed
    seed: int = 0  # seeds the user split, the weights and every draw
    validation: float = 0.2  # share of users in the validation split (users.sequences.user_split)
    test: float = 0.2  # share of users held out for testing (never read by training)

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
        _check_non_negative("[personalization]", self, ("epochs", "same_aisle", "sibling_aisles"))
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
    """A training run: data, sampler, model, loss and optimization."""

    data: DataConfig
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    base_model: str = "all-MiniLM-L6-v2"  # sentence-transformers path or hub name
    loss: str = "mnrl"  # mnrl (MultipleNegativesRankingLoss), cached_mnrl, or margin (cosine TripletLoss)
    scale: float = 20.0  # mnrl / cached_mnrl: similarity scale (inverse temperature)
    directions: tuple[str, ...] = (
        "query_to_doc",
    )  # mnrl / cached_mnrl: the softmax's terms (DIRECTIONS); all four: GTE's loss
    hardness_mode: str = (
        "none"  # mnrl / cached_mnrl: negatives whose logit gains hardness_strength x their cosine (HARDNESS_MODES)
    )
    hardness_strength: float = 0.0  # mnrl / cached_mnrl: that weight (EmbeddingGemma: 5 on hard negatives)
    margin: float = 0.3  # margin: cosine-distance margin between positive and negative
    mask_guide: str = (
        "base"  # masked_mnrl: who scores candidates, "base" (frozen base model) or "self" (the model trained)
    )
    mask_margin: float = 0.05  # masked_mnrl: negatives the guide scores above (positive - margin) are left out
    mask_strategy: str = (
        "absolute"  # masked_mnrl: margin in cosine ("absolute") or as a share of the positive's score ("relative")
    )
    mini_batch_size: int = 8  # cached_mnrl: rows per forward chunk (memory, not results)
    batch_size: int = 16  # rows per step
    batching: str = (
        "shuffled"  # "shuffled" rows, or "taxonomy": each batch of rows whose positives are taxonomy neighbours
    )
    max_steps: int = 200  # optimizer steps; 0 exports the base model unchanged (validated, e.g. under a user model)
    learning_rate: float = 2e-5  # AdamW peak learning rate
    warmup_ratio: float = 0.1  # share of max_steps with linear warmup
    max_seq_length: int = 64  # tokens per text (short keeps CPU training fast)
    eval_every: int = 50  # validate every N steps (and at step 0 and the last step)
    patience: int = 3  # stop after this many validations without improvement; 0 never stops early
    select_metric: str = "recall@24"  # validation metric that picks the best step
    restore_best: bool = True  # end with the best validated weights (step 0 = base model); false keeps the last step's
    seed: int = 13  # seeds torch, the data order, splits and samplers
    device: str = "cpu"  # torch device: cpu, cuda, cuda:1, mps
    # "bf16": training steps under bfloat16 autocast (a CPU with AMX / AVX-512 BF16, or a bf16 GPU); validation and
    # export stay fp32
    precision: str = "fp32"
    output_dir: str = ""  # where `tbhns train` writes the model [default: runs/train/<config name>]
    quantize: bool = True  # also export an int8 dynamically quantized ONNX variant
    int8_tolerance: float = 0.01  # int8 is accepted when no validation NDCG@10 / R@24 falls more than this vs fp32
    stage2: PreferenceConfig | None = None  # a ROAR stage after this one ([stage2] table); None: one stage
    distill: DistillConfig | None = None  # a hybrid teacher beside the contrastive loss ([distill] table); None: none
    personalization: PersonalizationTrainConfig | None = (
        None  # a user model after the encoder ([personalization] table)
    )

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ConfigError(f"loss={self.loss!r} is unknown; valid losses: {', '.join(LOSSES)}")
        object.__setattr__(self, "directions", tuple(self.directions))  # a TOML array arrives as a list
        if "query_to_doc" not in self.directions or not set(self.directions) <= set(DIRECTIONS):
            raise ConfigError(
                f'directions={list(self.directions)}: list "query_to_doc" and any of {", ".join(DIRECTIONS[1:])}'
            )
        if self.hardness_mode not in HARDNESS_MODES:
            raise ConfigError(
                f"hardness_mode={self.hardness_mode!r} is unknown; use one of {', '.join(HARDNESS_MODES)}"
            )
        tuned = [
            name
            for name, on in (
                ("directions", self.directions != ("query_to_doc",)),
                ("hardness_mode", self.hardness_mode != "none"),
            )
            if on
        ]
        if tuned and self.loss not in ("mnrl", "cached_mnrl"):
            raise ConfigError(f'{" and ".join(tuned)}: only with loss "mnrl" or "cached_mnrl", not {self.loss!r}')
        if self.distill and self.loss != "mnrl":
            raise ConfigError(f'[distill] adds to loss "mnrl", not {self.loss!r}; set loss = "mnrl"')
        if self.batching not in BATCHINGS:
            raise ConfigError(f"batching={self.batching!r} is unknown; use one of {', '.join(BATCHINGS)}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision={self.precision!r} is unknown; use one of {', '.join(PRECISIONS)}")
        if self.loss == "margin" and self.negatives_per_pair != 1:
            raise ConfigError(
                f'loss="margin" takes exactly one negative per row, the {self.sampler.name!r} '
                f'sampler gives {self.negatives_per_pair}; set its counts to 1 or use loss="mnrl"'
            )
        positive = ("batch_size", "max_seq_length", "eval_every", "mini_batch_size")
        bad = {name: getattr(self, name) for name in positive if getattr(self, name) < 1}
        if bad:
            raise ConfigError(f"{bad} must be at least 1")
        if self.batch_size < 2:
            raise ConfigError(f"batch_size={self.batch_size}: in-batch negatives need at least 2 rows per batch")
        if not 0 <= self.warmup_ratio < 1 or self.learning_rate <= 0:
            raise ConfigError(
                f"need 0 <= warmup_ratio < 1 and learning_rate > 0, got {self.warmup_ratio}, {self.learning_rate}"
            )
        _check_non_negative("", self, ("max_steps", "patience", "int8_tolerance", "hardness_strength"))
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


def load_train_config(path: str | Path) -> TrainConfig:
    """Read a TOML or JSON training config; unknown keys and bad values raise `ConfigError`.

    Example:
        >>> load_train_config("training/toys-taxonomy.toml").sampler.name  # doctest: +SKIP
        'taxonomy'
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        raw = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except FileNotFoundError:
        raise ConfigError(f"training config {str(path)!r} does not exist; see training/*.toml") from None
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"training config {path} is not valid {path.suffix.lstrip('.').upper()}: {exc}") from exc
    data = _build(DataConfig, raw.pop("data", None), f"{path} [data]")
    sampler = _build(SamplerConfig, raw.pop("sampler", {}), f"{path} [sampler]")
    stage2 = _build(PreferenceConfig, raw.pop("stage2"), f"{path} [stage2]") if "stage2" in raw else None
    distill = _build(DistillConfig, raw.pop("distill"), f"{path} [distill]") if "distill" in raw else None
    personalization = (
        _build(PersonalizationTrainConfig, raw.pop("personalization"), f"{path} [personalization]")
        if "personalization" in raw
        else None
    )
    config = _build(
        TrainConfig,
        {
            **raw,
            "data": data,
            "sampler": sampler,
            "stage2": stage2,
            "distill": distill,
            "personalization": personalization,
        },
        str(path),
    )
    return config if config.output_dir else replace(config, output_dir=str(Path("runs") / "train" / path.stem))


def _build(cls: type, values: Any, where: str) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f'{where}: missing or not a table; e.g. [data] with dataset = "icecat"')
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; valid keys: {', '.join(sorted(known))}")
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _check_non_negative(where: str, config: object, names: tuple[str, ...]) -> None:
    bad = {name: getattr(config, name) for name in names if getattr(config, name) < 0}
    if bad:
        raise ConfigError(f"{where} {bad} must be >= 0".strip())
