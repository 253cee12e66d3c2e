"""One exception tree for the project: every error a user can act on derives from TbhnsError."""

from __future__ import annotations

from typing import Any


class TbhnsError(Exception):
    """Base class: the message says what was wrong, the value that came in, and what to do."""


class ConfigError(TbhnsError):
    """A configuration value is missing or invalid."""


class ClusterError(TbhnsError):
    """The OpenSearch node could not be fetched, started, reached or stopped."""


class CatalogError(TbhnsError):
    """A catalog file or record could not be read."""


class TemplateError(TbhnsError):
    """An index template could not be loaded, rendered or applied."""


class IngestError(TbhnsError):
    """Documents could not be written; `failures` keeps every per-document reason."""

    def __init__(self, message: str, failures: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.failures = failures or []


class EncoderError(TbhnsError):
    """An encoder could not be loaded, exported or run."""


class SearchError(TbhnsError):
    """A search request could not be built or answered."""


class EncoderMismatchError(SearchError):
    """The query encoder makes vectors of another dimension than the product index holds."""


class EvaluationError(TbhnsError):
    """Labelled queries, a split, a run, a qrels file, a metric setting or a paired test is invalid (`eval`)."""


class TrainingError(TbhnsError):
    """Training data or a training run is invalid."""


class BenchError(TbhnsError):
    """A run, qrels file, metric setting or benchmark result is invalid."""


class PersonalizationError(TbhnsError):
    """User events, a user profile or the blending of a user vector with a query are invalid."""


class DeployError(TbhnsError):
    """The encoder could not be deployed in the cluster, or the cluster's vectors disagree with the client's."""
