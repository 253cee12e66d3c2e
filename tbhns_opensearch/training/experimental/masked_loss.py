"""Stage 1 of arXiv 2606.01504: contrastive loss with a false-negative margin mask.

Only the paper's abstract is public; this is our formulation. A batch has B rows (anchor a_i, positive p_i,
negatives n_i1 .. n_ik). Every anchor is scored against every candidate of the batch, C = [p_1..p_B,
n_11..n_B1, .., n_1k..n_Bk], as in sentence-transformers' MultipleNegativesRankingLoss:

    s_ij = scale * cos(a_i, c_j)                        (the model being trained)
    g_ij = cos_guide(a_i, c_j),  g_i+ = g_i,pos(i)      (the guide, no gradient)
    masked_ij = j != pos(i)  and  g_ij > g_i+ - margin               (absolute)
                                  g_ij > g_i+ - |g_i+| * margin      (relative)
    loss = mean_i  -log( exp(s_i,pos(i)) / sum_{j not masked} exp(s_ij) )

So a negative (explicit or in-batch) that the guide scores within `margin` of the row's own positive, or
above it, is treated as an unjudged relevant product and left out of the softmax instead of being pushed
away. The guide is a frozen copy of the base model ("base", the choice of GISTEmbed) or the model being
trained ("self"). A negative margin masks only candidates scored above the positive by more than |margin|.
This is sentence-transformers' GISTEmbedLoss rule, extended to any number of negatives per row, without
GIST's anchor-anchor terms, with a count of what was masked.

Example:
    >>> import torch
    >>> guide = torch.tensor([[0.9, 0.85, 0.2], [0.1, 0.8, 0.5]])  # rows: anchors; column i is row i's positive
    >>> false_negative_mask(guide, margin=0.1).tolist()
    [[False, True, False], [False, False, False]]
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from tbhns_opensearch.errors import ConfigError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

MASK_GUIDES = ("base", "self")
MARGIN_STRATEGIES = ("absolute", "relative")


def false_negative_mask(guide_scores: Tensor, margin: float, strategy: str = "absolute") -> Tensor:
    """Which candidates to leave out: (B, n_candidates) bool, never a row's own positive (column i for row i).

    Args:
        guide_scores: (B, n_candidates) guide cosines; column i is row i's positive.
        margin: Candidates scored above the positive's score minus the margin are masked.
        strategy: "absolute" (margin in cosine) or "relative" (margin as a share of |positive score|).
    """
    if strategy not in MARGIN_STRATEGIES:
        raise ConfigError(f"mask strategy {strategy!r} is unknown; use one of {', '.join(MARGIN_STRATEGIES)}")
    rows = torch.arange(guide_scores.size(0), device=guide_scores.device)
    positive = guide_scores[rows, rows].unsqueeze(1)  # (B, 1)
    slack = margin if strategy == "absolute" else positive.abs() * margin
    mask = guide_scores > positive - slack
    mask[rows, rows] = False
    return mask


class MaskedMultipleNegativesRankingLoss(nn.Module):
    """MultipleNegativesRankingLoss whose softmax leaves out the negatives a guide calls false (see module).

    Args:
        model: The SentenceTransformer being trained.
        guide: "base" (a frozen copy of `model` as it is now, before training) or "self" (`model` itself).
        margin: How close to the positive's guide score a negative may come before it is masked.
        strategy: "absolute" or "relative" margin.
        scale: Inverse temperature of the softmax (MNRL's default 20).

    Inputs:
        (anchor, positive, negative_1, ..., negative_k) columns, k >= 0; labels are unused.

    Attributes:
        masked, candidates: Negatives masked and negatives seen since the last `pop_counts()`.

    Example:
        >>> loss = MaskedMultipleNegativesRankingLoss(model, guide="base", margin=0.05)  # doctest: +SKIP
        >>> trainer = SentenceTransformerTrainer(model=model, train_dataset=rows, loss=loss)  # doctest: +SKIP
    """

    def __init__(
        self,
        model: SentenceTransformer,
        guide: str = "base",
        margin: float = 0.05,
        strategy: str = "absolute",
        scale: float = 20.0,
    ) -> None:
        super().__init__()
        if guide not in MASK_GUIDES:
            raise ConfigError(f"mask guide {guide!r} is unknown; use one of {', '.join(MASK_GUIDES)}")
        false_negative_mask(torch.zeros(1, 1), margin, strategy)  # rejects an unknown strategy now
        self.model = model
        self.guide = None if guide == "self" else copy.deepcopy(model).eval().requires_grad_(False)
        self.margin, self.strategy, self.scale = margin, strategy, scale
        self.masked = 0
        self.candidates = 0

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None) -> Tensor:
        features = list(sentence_features)
        guide_inputs = [dict(f) for f in features]  # the model writes its outputs into the dicts it is given
        embeddings = [self.model(f)["sentence_embedding"] for f in features]
        anchors, candidates = embeddings[0], torch.cat(embeddings[1:])  # (B, dim), (B * (1 + k), dim)
        scores = self.scale * _cosine(anchors, candidates)  # (B, B * (1 + k))
        with torch.no_grad():
            if self.guide is None:
                guide_scores = _cosine(anchors.detach(), candidates.detach())
            else:
                guided = [self.guide(f)["sentence_embedding"] for f in guide_inputs]
                guide_scores = _cosine(guided[0], torch.cat(guided[1:]))
            mask = false_negative_mask(guide_scores, self.margin, self.strategy)
        self.masked += int(mask.sum())
        self.candidates += mask.numel() - mask.size(0)
        targets = torch.arange(anchors.size(0), device=anchors.device)
        return nn.functional.cross_entropy(scores.masked_fill(mask, float("-inf")), targets)

    def pop_counts(self) -> dict[str, int]:
        """Masked and seen negatives since the last call, then reset (for the per-step log)."""
        counts = {"masked_negatives": self.masked, "negatives": self.candidates}
        self.masked = self.candidates = 0
        return counts


def _cosine(a: Tensor, b: Tensor) -> Tensor:
    return nn.functional.normalize(a, dim=-1) @ nn.functional.normalize(b, dim=-1).T
