"""The model card of a training run: `model_card.json` and `MODEL_CARD.md` in the model directory.

It records what a reader needs to trust or reproduce the model: the data (which set; real vs generated
queries and pairs, kept apart), the taxonomy (catalog or induced), the full config, the sampler and the
level each negative came from, steps run and the best step, wall time, validation metrics of the base
model (step 0) and of the exported weights, the ONNX parity and, with `[personalization]`, the user model's
validation figures (plain query vs learned).

Example:
    >>> card = model_card(result, export)  # doctest: +SKIP
    >>> write_model_card(Path("runs/train/toys"), card)  # doctest: +SKIP
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tbhns_opensearch.training.experimental.card import negatives_lines, training_lines

if TYPE_CHECKING:
    from tbhns_opensearch.encoder.export import ExportReport
    from tbhns_opensearch.training.trainer import TrainResult

CARD_JSON = "model_card.json"
CARD_MARKDOWN = "MODEL_CARD.md"


@dataclass(frozen=True)
class ModelCard:
    """Everything the card shows; `to_dict` is the JSON, `to_markdown` the Markdown."""

    data: dict[str, Any]
    config: dict[str, Any]
    sampler: dict[str, Any]
    training: dict[str, Any]
    validation_base: dict[str, float]
    validation: dict[str, float]
    export: dict[str, Any] | None
    personalization: dict[str, Any] | None = None  # the user model's manifest entry (`training.personalization`)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_markdown(self) -> str:
        data, training, sampler = self.data, self.training, self.sampler
        lines = [
            f"# {data['name']} bi-encoder, {sampler['name']} negatives",
            "",
            f"Fine-tuned from `{self.config['base_model']}` with sentence-transformers "
            f"({self.config['loss']['name']} loss) by `tbhns train`.",
            "",
            "## Data",
            f"- catalog: {data['name']}, {data['counts'].get('products', 0)} products; queries: {data['queries']}",
            f"- training pairs: {data['counts'].get('train_pairs_real', 0)} real, "
            f"{data['counts'].get('train_pairs_generated', 0)} generated "
            f"({data['counts'].get('train_queries_real', 0)} real / {data['counts'].get('train_queries_generated', 0)} "
            "generated queries)",
            f"- validation queries: {data['counts'].get('validation_queries_real', 0)} real, "
            f"{data['counts'].get('validation_queries_generated', 0)} generated; test queries (held out): "
            f"{data['counts'].get('test_queries_real', 0)} real, "
            f"{data['counts'].get('test_queries_generated', 0)} generated",
            *_order_lines(data),
            f"- taxonomy: {sampler.get('taxonomy') or 'not used'}",
            "",
            "## Negatives" if self.config["max_steps"] else "## Negatives (drawn, never trained on: max_steps = 0)",
            f"- sampler `{sampler['name']}` {json.dumps(sampler['params'])}, {sampler['negatives_per_pair']} per row",
            f"- negatives by level: {json.dumps(sampler['level_counts'])}; short draws filled at random: "
            f"{sampler['short_rows']}",
        ]
        if sampler["remined_at"]:
            lines.append(f"- re-mined at steps {list(sampler['remined_at'])}")
        lines += negatives_lines(self.config, training)
        steps = (
            (
                f"- steps: {training['steps']} of {self.config['max_steps']} "
                f"(early stop: {training['stopped_early']}); best validation at step {training['best_step']}"
            )
            if self.config["max_steps"]
            else (
                f"- no encoder training (max_steps = 0): the base model `{self.config['base_model']}` "
                "is exported unchanged"
            )
        )
        lines += [
            "",
            "## Training",
            steps,
            f"- wall time: {training['wall_s']:.0f} s ({training['eval_s']:.0f} s of it validation), "
            f"device {self.config['device']}, precision {self.config.get('precision', 'fp32')}"
            f"{_processes(self.config, training.get('processes', 1))}",
            *training_lines(self.config, training),
            "",
            "## Validation (VALIDATION users' last orders; training never read these users)"
            if data["queries"] == "orders"
            else "## Validation (held-out queries training never saw)",
            "| metric | base (step 0) | this model |",
            "|---|---|---|",
            *(
                f"| {name} | {self.validation_base.get(name, float('nan')):.4f} | {value:.4f} |"
                for name, value in self.validation.items()
            ),
        ]
        if self.export:
            onnx, int8 = self.export["onnx"], self.export.get("quantized")
            lines += [
                "",
                "## Export",
                f"- dimension {self.export['dimension']}, cosine similarity on normalized vectors, "
                f"max_seq_length {self.export['max_seq_length']}, {self.export['pooling']} pooling",
                f"- `{onnx['file']}`: min cosine to torch {onnx['min_cosine']:.6f} over {onnx['texts']} texts "
                f"({onnx['size_mb']} MB)",
            ]
            if int8:
                lines.append(
                    f"- `{int8['file']}` (int8, dynamic): min cosine {int8['min_cosine']:.4f}, "
                    f"mean {int8['mean_cosine']:.4f} ({int8['size_mb']} MB)"
                )
            if gate := self.export.get("int8_gate"):
                lines.append(
                    f"- int8 retrieval gate ({gate['queries']} validation queries, {gate['products']} "
                    f"candidates): fp32 {gate['fp32']}, int8 {gate['int8']}: "
                    f"{'accepted' if gate['accepted'] else 'refused'} ({gate['reason']})"
                )
        return "\n".join([*lines, *_user_model_lines(self.personalization)]) + "\n"


def _processes(config: dict[str, Any], processes: int) -> str:
    """How many processes trained the model (`training.distributed`), and whether the loss gathered their rows."""
    if processes < 2:
        return ""
    loss = config["loss"]
    gathered = loss.get("gather_across_devices") and loss["name"] in ("mnrl", "cached_mnrl")
    negatives = "in-batch negatives gathered across them" if gathered else "in-batch negatives within each"
    return f", {processes} processes (batch_size {config['batch_size']} split over them, {negatives})"


def _order_lines(data: dict[str, Any]) -> list[str]:
    """Where `queries = "orders"` came from: REAL users' orders, DERIVED aisle queries, split by user."""
    if data["queries"] != "orders":
        return []
    counts = data["counts"]
    return [
        f"- queries DERIVED from REAL users' orders (the aisle of each product bought, not typed by shoppers): "
        f"training on {counts['train_users']} TRAIN users' every order; validation on {counts['validation_users']} "
        f"VALIDATION users' last orders; {counts['test_users']} TEST users held out; "
        f"{counts['order_lines_dropped_unnamed']} of {counts['order_lines']} order lines dropped for want of a "
        "product name"
    ]


def _user_model_lines(entry: dict[str, Any] | None) -> list[str]:
    """The user model's section: REAL users, DERIVED queries, VALIDATION figures, plain vs learned."""
    if not entry:
        return []
    plain, learned = entry["validation"]["plain"], entry["validation"]["learned"]
    return [
        "",
        "## User model (learned personalization)",
        f"- `{entry['path']}/`: attention over the last {entry['max_history']} purchases with a zero slot, dim "
        f"{entry['dim']} (`users.attention`), on this encoder's vectors",
        f"- trained on REAL users' orders ({entry['order_lines']}): {entry['train_examples']} examples from "
        f"every order of {entry['train_users']} TRAIN users, {entry['epochs']} epochs, best epoch "
        f"{entry['best_epoch']} (0: untrained), {entry['train_s']:.0f} s on {entry['device']}",
        f"- {entry['products']} products named by the order lines; {entry['order_lines_dropped_unnamed']} of "
        f"{entry['order_lines_read']} lines dropped for want of a name",
        "",
        f"VALIDATION split: {entry['validation_queries']} DERIVED {entry['query_form']} queries (the category of a "
        f"product of the user's whole last order, not typed by shoppers) of {entry['validation_users']} REAL users, "
        "exact search:",
        "",
        "| metric | plain query | learned personalization |",
        "|---|---|---|",
        *(f"| {name} | {plain[name]:.4f} | {learned[name]:.4f} |" for name in plain),
    ]


def model_card(
    result: TrainResult, export: ExportReport | None = None, personalization: dict[str, Any] | None = None
) -> ModelCard:
    """Collect the card of a finished run (its export, and its user model's manifest entry)."""
    config = asdict(result.config)
    data = {"name": result.data.name, "queries": result.config.data.queries, "counts": result.data.report}
    training = {
        "steps": result.steps,
        "best_step": result.best_step,
        "stopped_early": result.stopped_early,
        "wall_s": round(result.wall_s, 1),
        "eval_s": round(result.eval_s, 1),
        "relevance_threshold": result.metrics.threshold,
        "step_log": result.log_path.name,
        "loss_counts": result.loss_counts,
        "processes": result.processes,
    }
    if result.stage2 is not None:
        stage2 = asdict(result.stage2)
        training["stage2"] = {
            **{k: v for k, v in stage2.items() if k not in ("history", "log_path")},
            "step_log": result.stage2.log_path.name,
        }
    exported = None
    if export is not None:
        exported = {key: value for key, value in asdict(export).items() if key != "directory"}
    return ModelCard(
        data=data,
        config=config,
        sampler=asdict(result.sampler),
        training=training,
        validation_base=result.history[0].metrics,
        validation=result.best_validation,
        export=exported,
        personalization=personalization,
    )


def write_model_card(directory: Path, card: ModelCard) -> tuple[Path, Path]:
    """Write `model_card.json` and `MODEL_CARD.md`; return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    json_path, markdown_path = directory / CARD_JSON, directory / CARD_MARKDOWN
    json_path.write_text(json.dumps(card.to_dict(), indent=2, default=str) + "\n")
    markdown_path.write_text(card.to_markdown())
    return json_path, markdown_path
