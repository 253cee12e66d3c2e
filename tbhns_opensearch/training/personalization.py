"""The user model of a training run (`[personalization]`): trained on the exported encoder's vectors, saved
beside it.

After `pipeline.train_and_export` has written the encoder, `train_personalization`:
1. reads the order lines (REAL users, `users.sequences`) joined with Instacart's catalog and keeps the
   products they name (`users.sequences.named_products`);
2. encodes those products and every query text of the configured form (aisle, or department > aisle: DERIVED
   from categories, not typed by shoppers) with the EXPORTED encoder, as ingest and search will;
3. trains a `users.attention.UserAttention` on the TRAIN users' every order
   (`order_queries(every_order=True)`, in-batch + TB-HNS same/sibling-aisle negatives), keeping the epoch best
   on the VALIDATION users' last orders (`users.attention_training.train_user_model`);
4. saves it to `<model dir>/user_model/` (`save_user_model`) and adds a "user_model" entry to
   `tbhns_manifest.json` (`encoder.export.record_user_model`): path, format, max_history, dim, split sizes,
   validation figures of the plain query vs the learned model, train seconds, device. The model card shows
   the same figures (`card.ModelCard.personalization`).

Test users are never read (their share only shapes the split).

Example:
    >>> entry = train_personalization(config, Path("runs/train/instacart-sequences-learned"))  # doctest: +SKIP
    >>> entry["validation"]["learned"]["recall@24"] > entry["validation"]["plain"]["recall@24"]  # doctest: +SKIP
    True
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from tbhns_opensearch.catalog import Product
from tbhns_opensearch.catalog.adapters import read_dataset
from tbhns_opensearch.encoder import Encoder
from tbhns_opensearch.encoder.export import record_user_model
from tbhns_opensearch.errors import ConfigError
from tbhns_opensearch.training.config import PersonalizationTrainConfig, TrainConfig
from tbhns_opensearch.users.attention import FORMAT, USER_MODEL_DIR, UserAttentionConfig, save_user_model
from tbhns_opensearch.users.attention_training import (
    AttentionTrainConfig,
    EpochLog,
    ProductSpace,
    evaluate_model,
    order_queries,
    train_user_model,
)
from tbhns_opensearch.users.sequences import QUERY_FORMS, named_products, read_order_sequences, select_users

SHOWN = ("recall@10", "recall@24", "recall@100", "ndcg@10")  # validation figures kept in the manifest and card


def train_personalization(config: TrainConfig, directory: Path) -> dict[str, Any]:
    """Train the user model of `config.personalization` on the encoder exported in `directory`, save it to
    `directory/user_model/` and record it in the manifest (module docstring); return the manifest entry.

    Args:
        config: The run; its `personalization` table and `device` are read.
        directory: The exported model directory (`tbhns_manifest.json` written).
    """
    settings = config.personalization
    if settings is None:
        raise ConfigError("the run has no [personalization] table; add one with order_lines to train a user model")
    catalog = list(read_dataset("instacart", settings.products))
    sequences = read_order_sequences(settings.order_lines, catalog)
    users = {
        name: select_users(
            sequences.users, name, seed=settings.seed, validation=settings.validation, test=settings.test
        )
        for name in ("train", "validation")
    }
    space = product_space(
        named_products(sequences.users, catalog), Encoder(str(directory), device=config.device), settings.query_form
    )
    examples = order_queries(users["train"], space, form=settings.query_form, every_order=True)
    validation = order_queries(users["validation"], space, form=settings.query_form)
    _note(
        f"user model: {len(examples)} examples of {len(users['train'])} TRAIN users, {len(validation)} queries of "
        f"{len(users['validation'])} VALIDATION users, {settings.epochs} epochs on {config.device}"
    )
    with tqdm(total=settings.epochs + 1, desc="user model", unit="epoch") as bar:
        trained = train_user_model(
            examples,
            validation,
            space,
            attention_config(settings, space, config.device),
            progress=lambda log: _advance(bar, log),
        )
    save_user_model(trained.model, directory / USER_MODEL_DIR)
    plain, learned = evaluate_model(None, validation, space).mean, trained.log[trained.best_epoch].validation
    entry = {
        "path": USER_MODEL_DIR,
        "format": FORMAT,
        "max_history": settings.max_history,
        "dim": int(space.matrix.shape[1]),
        "query_form": settings.query_form,
        "order_lines": settings.order_lines,
        "order_lines_read": sequences.lines_read,
        "order_lines_dropped_unnamed": sequences.lines_dropped,
        "products": len(space.products),
        "train_users": len(users["train"]),
        "train_examples": trained.train_examples,
        "validation_users": len(users["validation"]),
        "validation_queries": len(validation),
        "epochs": settings.epochs,
        "best_epoch": trained.best_epoch,
        "train_loss": [round(log.loss, 4) for log in trained.log[1:]],  # mean loss of each epoch, 1 first
        "train_s": round(trained.train_seconds, 1),
        "device": config.device,
        "validation": {"plain": _rounded(plain), "learned": _rounded(learned)},
    }
    record_user_model(directory, entry)
    return entry


def product_space(products: Sequence[Product], encoder: Encoder, form: str) -> ProductSpace:
    """`products` (sorted by id) and the query texts of `form` for their taxonomy paths, encoded by `encoder`.

    Example:
        >>> milk = Product("1", "Oat Milk", taxonomy_path=("dairy eggs", "milk"))
        >>> sorted(product_space([milk], Encoder(), "path").query_vectors)  # doctest: +SKIP
        ['dairy eggs > milk']
    """
    ordered = sorted(products, key=lambda p: (len(p.id), p.id))
    texts = sorted({QUERY_FORMS[form](p.taxonomy_path) for p in ordered if p.taxonomy_path})
    _note(f"user model: encoding {len(ordered)} products and {len(texts)} {form} queries with {encoder.name_or_path}")
    matrix = encoder.encode([p.text_for_embedding() for p in ordered], progress="products")  # (n_products, dim)
    queries = encoder.encode(texts)  # (n_texts, dim)
    return ProductSpace(tuple(ordered), matrix, dict(zip(texts, queries)))


def attention_config(settings: PersonalizationTrainConfig, space: ProductSpace, device: str) -> AttentionTrainConfig:
    """The user model's training settings from the `[personalization]` table, at the encoder's dimension.

    Example:
        >>> import numpy as np
        >>> space = ProductSpace((Product("1", "Tea"),), np.ones((1, 8), np.float32), {})
        >>> attention_config(PersonalizationTrainConfig(order_lines="o.csv"), space, "cpu").model.dim
        8
    """
    return AttentionTrainConfig(
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        temperature=settings.temperature,
        same_aisle=settings.same_aisle,
        sibling_aisles=settings.sibling_aisles,
        seed=settings.seed,
        device=device,
        model=UserAttentionConfig(dim=int(space.matrix.shape[1]), max_history=settings.max_history),
    )


def _advance(bar: tqdm, log: EpochLog) -> None:
    bar.update(1)
    bar.set_postfix({"epoch": log.epoch, "loss": f"{log.loss:.3f}", "R@24": f"{log.validation['recall@24']:.4f}"})


def _rounded(metrics: dict[str, float]) -> dict[str, float]:
    return {name: round(float(metrics[name]), 4) for name in SHOWN}


def _note(line: str) -> None:
    tqdm.write(line, file=sys.stderr)
