"""Vectors of two encoders are never mixed or compared, against the real node (`index.vector_space`).

"Another model" here is the packaged MiniLM with its vector coordinates permuted: the same dimension and norms,
another space, as a fine-tuned model's would be. "The same model" is MiniLM with noise far below the signature's
tolerance, as an ONNX export or a bf16 run of it gives.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from tbhns_opensearch.encoder import Encoder, unit_rows
from tbhns_opensearch.errors import EncoderMismatchError, IngestError
from tbhns_opensearch.index.ingest import IngestConfig, ingest_products
from tbhns_opensearch.index.templates import alias_meta
from tbhns_opensearch.index.vector_space import SIGNATURE, encoder_signature
from tbhns_opensearch.query import SearchClient, transport
from tbhns_opensearch.users.events import UserEvent
from tbhns_opensearch.users.store import UsersIngestConfig, get_user_profile, ingest_users
from tests.helpers import PERSONALIZATION, fixture_products

pytestmark = pytest.mark.integration
QUIET = IngestConfig(progress=False)
REBUILD = IngestConfig(progress=False, rebuild=True)


class _Remapped:
    """A backend whose vectors are another backend's, remapped by `change` (rows stay unit length)."""

    def __init__(self, inner, change) -> None:  # type: ignore[no-untyped-def]
        self.inner, self.change, self.dimension = inner, change, inner.dimension

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        return unit_rows(self.change(self.inner.encode(texts, batch_size)))


def _remapped(encoder: Encoder, change) -> Encoder:  # type: ignore[no-untyped-def]
    other = Encoder(encoder.name_or_path)
    other.__dict__["runtime"] = _Remapped(encoder.runtime, change)  # the loaded model, not a second copy
    return other


@pytest.fixture(scope="module")
def another_model(encoder: Encoder) -> Encoder:
    order = np.random.default_rng(0).permutation(encoder.dimension)
    return _remapped(encoder, lambda vectors: vectors[:, order])


@pytest.fixture(scope="module")
def same_model(encoder: Encoder) -> Encoder:
    noise = np.random.default_rng(1)
    return _remapped(encoder, lambda vectors: vectors + noise.normal(0.0, 1e-4, vectors.shape).astype(np.float32))


@pytest.fixture(scope="module")
def toys():  # type: ignore[no-untyped-def]
    return fixture_products("toys_products.jsonl")[:60]


@pytest.fixture
def users_index(os_client, index_config) -> Iterator[str]:  # type: ignore[no-untyped-def]
    name = f"users-{index_config.alias}"  # not under the alias's pattern, which the product template claims
    yield name
    os_client.indices.delete(index=name, ignore_unavailable=True)


def test_a_rebuild_with_the_same_model_keeps_the_signature_and_another_model_gets_its_own(
    os_client, encoder, same_model, another_model, index_config, toys
) -> None:
    ingest_products(os_client, toys, encoder, index_config, QUIET)
    first = alias_meta(os_client, index_config.alias)[SIGNATURE]
    assert first == encoder_signature(encoder)
    assert encoder_signature(same_model) != first  # other bytes, the same space

    ingest_products(os_client, toys, same_model, index_config, REBUILD)
    assert alias_meta(os_client, index_config.alias)[SIGNATURE] == first  # carried: profiles stay valid

    ingest_products(os_client, toys, another_model, index_config, REBUILD)
    assert alias_meta(os_client, index_config.alias)[SIGNATURE] == encoder_signature(another_model)


def test_another_models_vectors_are_refused_by_a_live_index_before_any_is_written(
    os_client, encoder, same_model, another_model, index_config, toys
) -> None:
    summary = ingest_products(os_client, toys[:40], encoder, index_config, QUIET)
    with pytest.raises(IngestError, match="holds vectors of another encoder than .* rerun with --rebuild"):
        ingest_products(os_client, toys[40:], another_model, index_config, QUIET)
    assert os_client.count(index=index_config.alias)["count"] == 40
    assert not os_client.mget(index=summary.index, body={"ids": [p.id for p in toys[40:]]}, _source=False)["docs"][0][
        "found"
    ]

    ingest_products(os_client, toys[40:], same_model, index_config, QUIET)  # the same space: taken, sig. kept
    assert os_client.count(index=index_config.alias)["count"] == 60
    assert alias_meta(os_client, index_config.alias)[SIGNATURE] == encoder_signature(encoder)


def test_searching_with_another_model_than_the_index_was_built_with_is_a_clear_error(
    os_client, opensearch_config, encoder, another_model, index_config, toys
) -> None:
    ingest_products(os_client, toys, encoder, index_config, QUIET)
    wrong = SearchClient(opensearch_config, index_config.alias, another_model)
    for mode in ("semantic", "hybrid", "personalized"):
        with pytest.raises(EncoderMismatchError, match="is another model than the one that made the vectors"):
            wrong.search("toy car", mode=mode)
    assert wrong.search("toy car", mode="bm25").hits  # no vectors: no encoder to match
    right = SearchClient(opensearch_config, index_config.alias, encoder)
    assert right.search("toy car", mode="semantic").hits


def test_profiles_from_another_models_vectors_fall_back_until_ingest_users_runs_again(
    os_client, opensearch_config, encoder, another_model, index_config, users_index, toys
) -> None:
    events = [UserEvent("fan", product.id, "purchase", float(t)) for t, product in enumerate(toys[:6])]
    users = UsersIngestConfig(index_config.alias, users_index, PERSONALIZATION)
    ingest_products(os_client, toys, encoder, index_config, QUIET)
    ingest_users(os_client, events, users)
    assert get_user_profile(os_client, users_index, "fan").space is not None
    before = SearchClient(
        opensearch_config,
        index_config.alias,
        encoder,
        users_index=users_index,
        personalization=PERSONALIZATION,
        user_ttl_s=0,
    )
    assert not before.search("toy car", user_id="fan", mode="personalized").fallback

    ingest_products(os_client, toys, another_model, index_config, REBUILD)  # a new model; users not rebuilt
    after = SearchClient(
        opensearch_config,
        index_config.alias,
        another_model,
        users_index=users_index,
        personalization=PERSONALIZATION,
        user_ttl_s=0,
    )
    for mode in ("personalized", "hybrid"):
        response = after.search("toy car", user_id="fan", mode=mode)
        assert response.fallback and "run `tbhns ingest-users` again" in response.fallback_reason
    plain = after.search("toy car", mode="semantic")
    assert [h.id for h in after.search("toy car", user_id="fan", mode="personalized").hits] == [
        h.id for h in plain.hits
    ]

    ingest_users(os_client, events, users)  # rebuilt from the new vectors
    assert not after.search("toy car", user_id="fan", mode="personalized").fallback


def test_ingest_users_refuses_to_encode_missing_products_with_another_model(
    os_client, encoder, another_model, index_config, users_index, toys
) -> None:
    ingest_products(os_client, toys[:10], encoder, index_config, QUIET)
    events = [UserEvent("fan", product.id, "purchase", float(t)) for t, product in enumerate(toys[5:15])]
    config = UsersIngestConfig(index_config.alias, users_index, PERSONALIZATION)
    with pytest.raises(IngestError, match="is another model than the one that made the vectors"):
        ingest_users(os_client, events, config, catalog=toys, encoder=another_model)
    assert get_user_profile(os_client, users_index, "fan") is None  # nothing written
    assert ingest_users(os_client, events, config, catalog=toys, encoder=encoder).encoded_products == 5


def test_a_running_client_follows_the_alias_onto_a_new_index_and_checks_it(
    os_client, opensearch_config, encoder, another_model, index_config, toys, monkeypatch
) -> None:
    """A long-running client (`serve`) reads the mapping again every MAPPING_TTL_S. Before, it kept what it read
    first: started before the first ingest, it never read display fields from doc values nor checked the
    encoder; running across a rebuild with another model, it kept searching with the old one, silently."""
    monkeypatch.setattr(transport, "MAPPING_TTL_S", 0.0)
    running = SearchClient(opensearch_config, index_config.alias, encoder)
    assert running.transport.facts.dimension is None  # no index yet

    ingest_products(os_client, toys, encoder, index_config, QUIET)
    assert running.search("toy car", mode="semantic").hits
    assert running.transport.display_doc_values and running.transport.facts.dimension == encoder.dimension

    ingest_products(os_client, toys, another_model, index_config, REBUILD)
    with pytest.raises(EncoderMismatchError, match="is another model than the one that made the vectors"):
        running.search("toy car", mode="semantic")
