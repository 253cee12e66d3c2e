"""The query-vector cache is bounded and least-recently-used; the backend follows the encoder directory."""

import numpy as np

from tbhns_opensearch.encoder import Encoder, default_backend
from tbhns_opensearch.query.encoding import QueryEncoder


class CountingEncoder(Encoder):
    """Encodes text to a one-hot of its length; counts calls. Loads no model."""

    def __init__(self) -> None:
        super().__init__("fake")
        self.calls: list[str] = []

    def encode(self, texts, batch_size=None):  # type: ignore[no-untyped-def]
        self.calls.extend(texts)
        vectors = np.zeros((len(texts), 8), dtype=np.float32)
        vectors[np.arange(len(texts)), [len(text) % 8 for text in texts]] = 1.0
        return vectors


def test_lru_cache_is_bounded_and_evicts_the_least_recently_used() -> None:
    fake = CountingEncoder()
    encoder = QueryEncoder(fake, cache_size=2)
    for text in ["a", "bb", "a", "ccc", "bb", "a"]:
        encoder.encode(text)
    # "a" hit once; "ccc" evicted "bb" (least recently used), then "bb" evicted "a"
    assert fake.calls == ["a", "bb", "ccc", "bb", "a"]
    info = encoder.cache_info()
    assert (info.hits, info.misses, info.size, info.capacity) == (1, 5, 2, 2)


def test_cached_vectors_are_read_only_and_identical() -> None:
    encoder = QueryEncoder(CountingEncoder(), cache_size=4)
    first = encoder.encode("kite")
    assert encoder.encode("kite") is first and not first.flags.writeable


def test_cache_size_zero_disables_the_cache() -> None:
    fake = CountingEncoder()
    encoder = QueryEncoder(fake, cache_size=0)
    encoder.encode("kite"), encoder.encode("kite")
    assert fake.calls == ["kite", "kite"] and encoder.cache_info().size == 0


def test_default_backend_is_onnx_only_with_an_export(tmp_path) -> None:
    assert default_backend(str(tmp_path)) == "torch"
    (tmp_path / "onnx").mkdir()
    (tmp_path / "onnx" / "model.onnx").write_bytes(b"")
    assert default_backend(str(tmp_path)) == "onnx"


def test_a_path_becomes_an_encoder_lazily(tmp_path) -> None:
    encoder = QueryEncoder(str(tmp_path), cache_size=1)
    assert not encoder.loaded
    assert (encoder.encoder.name_or_path, encoder.encoder.backend) == (str(tmp_path), "torch")
    assert not encoder.loaded


class LengthRuntime:
    """A backend stand-in: one-hot of each text's length; records the size of every call."""

    dimension = 8  # every backend declares its vector dimension

    def __init__(self) -> None:
        self.calls: list[int] = []

    def encode(self, texts, batch_size):  # type: ignore[no-untyped-def]
        self.calls.append(len(texts))
        vectors = np.zeros((len(texts), 8), dtype=np.float32)
        vectors[np.arange(len(texts)), [len(text) % 8 for text in texts]] = 1.0
        return vectors


def test_progress_encodes_in_chunks_with_the_same_vectors(monkeypatch, capsys) -> None:
    monkeypatch.setattr("tbhns_opensearch.encoder.PROGRESS_CHUNK", 3)
    encoder, runtime = Encoder("fake"), LengthRuntime()
    encoder.__dict__["runtime"] = runtime  # the cached backend: no model is loaded
    texts = ["a", "bb", "ccc", "dddd", "e", "ff", "ggg"]
    plain = encoder.encode(texts)
    with_progress = encoder.encode(texts, progress="products")
    assert runtime.calls == [7, 3, 3, 1]
    assert np.array_equal(plain, with_progress) and with_progress.dtype == np.float32
    assert "encoding products" in capsys.readouterr().err
