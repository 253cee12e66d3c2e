"""Stage 2 of arXiv 2606.01504: Relative Odds Alignment for Retrieval (ROAR), a preference loss on graded groups.

Only the paper's abstract is public; this is our formulation. A row is one query q with K products and their
grades; the products of one grade form a group, so a row has 2 or more groups of any sizes (padding slots
carry `PAD_GRADE` and belong to none). With s_d = scale * cos(q, d), a group's strength is the mean of its
members' odds, exp(s_d), kept in log space with log-sum-exp (log-mean-exp, LME):

    LME(G) = logsumexp_{d in G} s_d - log |G|

For every pair of consecutive grades present in the row, higher group H above lower group L:

    P(H > L) = sigmoid(LME(H) - LME(L) - delta),     delta = margin * (grade(H) - grade(L))
    loss_row = mean over consecutive pairs of  -log P(H > L) = softplus(delta - (LME(H) - LME(L)))

and the batch loss is the mean over rows (plus, with `contrast` > 0, `contrast` times an in-batch
contrastive term: `in_batch_contrast`). With one product per group this is Bradley-Terry with a margin on
the log odds ratio; groups generalize it to any number of products per grade, and the mean (not the sum) of
odds keeps a large group from winning by its size alone. The margin grows with the grade gap, so "exact over
irrelevant" must be won by more than "exact over partial". Choices we made: mean odds per group, consecutive
grades only (the chain implies the rest), margins linear in the grade gap.

Example:
    >>> import torch
    >>> scores = torch.tensor([[2.0, 1.0, 0.0, 0.0]])
    >>> grades = torch.tensor([[2.0, 1.0, 0.0, PAD_GRADE]])
    >>> round(float(roar_loss(scores, grades, margin=0.0)), 4)  # softplus(-1) for both pairs
    0.3133
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

PAD_GRADE = -100.0
"""The grade of a padding slot: it belongs to no group."""


def roar_loss(scores: Tensor, grades: Tensor, margin: float = 1.0) -> Tensor:
    """ROAR over a batch (see the module docstring).

    Args:
        scores: (B, K) scaled similarities of each row's query with its K products.
        grades: (B, K) grades; `PAD_GRADE` marks padding. A row needs two grades to contribute.
        margin: delta per grade of difference, in logits.
    """
    row_losses = []
    for row_scores, row_grades in zip(scores, grades):
        present = sorted({float(g) for g in row_grades.tolist() if g != PAD_GRADE}, reverse=True)
        strengths = [_log_mean_exp(row_scores[row_grades == g]) for g in present]
        pairs = [
            nn.functional.softplus(margin * (high - low) - (strengths[i] - strengths[i + 1]))
            for i, (high, low) in enumerate(zip(present, present[1:]))
        ]
        if pairs:
            row_losses.append(torch.stack(pairs).mean())
    if not row_losses:
        return scores.sum() * 0.0  # no row with two grades: a zero that still has a graph
    return torch.stack(row_losses).mean()


def in_batch_contrast(queries: Tensor, products: Tensor, grades: Tensor, scale: float) -> Tensor:
    """Cross-entropy of each row's first product (one of its highest grade) against every product of the other
    rows: ROAR orders a query's judged products among themselves; this keeps them above the rest of the catalog.
    A row's own other products and padding are left out of its softmax.

    Args:
        queries: (B, dim) unit query vectors.
        products: (B, K, dim) unit product vectors, each row's first one of its highest grade.
        grades: (B, K) grades, `PAD_GRADE` for padding.
        scale: inverse temperature on the cosines.

    Example:
        >>> import torch
        >>> q = torch.eye(2)
        >>> p = torch.stack([torch.eye(2), torch.eye(2).flip(0)])  # row 0: (e0, e1), row 1: (e1, e0)
        >>> g = torch.tensor([[1.0, 0.0], [1.0, PAD_GRADE]])
        >>> round(float(in_batch_contrast(q, p, g, scale=1.0)), 4)  # row 0 vs row 1's e1; row 1 vs row 0's e0, e1
        0.5876
    """
    rows, slots, _ = products.shape
    scores = scale * queries @ products.reshape(rows * slots, -1).T  # (B, B*K)
    row = torch.arange(rows, device=scores.device)
    owner = row.repeat_interleave(slots)  # the row each product belongs to
    target = row * slots  # each row's first product
    column = torch.arange(rows * slots, device=scores.device)
    keep = (owner[None, :] != row[:, None]) | (column[None, :] == target[:, None])
    keep &= (grades.reshape(-1) != PAD_GRADE)[None, :]
    return nn.functional.cross_entropy(scores.masked_fill(~keep, float("-inf")), target)


def _log_mean_exp(values: Tensor) -> Tensor:
    return torch.logsumexp(values, dim=0) - math.log(values.numel())


class ROARLoss(nn.Module):
    """Relative Odds Alignment for Retrieval as a sentence-transformers loss (see the module docstring).

    Args:
        model: The SentenceTransformer being trained.
        margin: delta per grade of difference, in logits (scale 20: 1.0 is a cosine gap of 0.05).
        scale: Inverse temperature applied to the cosines.
        contrast: Weight of `in_batch_contrast` added to ROAR (0: ROAR alone).

    Inputs:
        (query, product_1, ..., product_K) columns; `label` is the (K,) grades of the row's products, with
        `PAD_GRADE` for empty slots (`groups.graded_rows` builds such rows).

    Example:
        >>> loss = ROARLoss(model, margin=1.0)  # doctest: +SKIP
        >>> trainer = SentenceTransformerTrainer(  # doctest: +SKIP
        ...     model=model, train_dataset=graded_rows(...), loss=loss
        ... )
    """

    def __init__(
        self, model: SentenceTransformer, margin: float = 1.0, scale: float = 20.0, contrast: float = 0.0
    ) -> None:
        super().__init__()
        self.model, self.margin, self.scale, self.contrast = model, margin, scale, contrast

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor) -> Tensor:
        embeddings = [nn.functional.normalize(self.model(f)["sentence_embedding"], dim=-1) for f in sentence_features]
        queries, products = embeddings[0], torch.stack(embeddings[1:], dim=1)  # (B, dim), (B, K, dim)
        scores = self.scale * torch.einsum("bd,bkd->bk", queries, products)  # (B, K)
        grades = labels.to(scores.dtype)
        loss = roar_loss(scores, grades, self.margin)
        if self.contrast:
            loss = loss + self.contrast * in_batch_contrast(queries, products, grades, self.scale)
        return loss
