"""The contrastive loss plus distillation from a teacher's scores, on one forward pass of each batch.

Rows are (query, positive, negative_1..negative_n, candidate_1..candidate_m) with labels of shape (B, 1 + m):
the teacher's scores for (positive, candidate_1..candidate_m) (`teacher.HybridTeacher`). The first 2 + n
columns go to the contrastive loss as they would alone (the candidates never become anyone's in-batch
negatives: the hybrid ranks relevant products among them); (query, positive, candidates) go to
sentence-transformers' `DistillKLDivLoss`, the KL divergence from the teacher's softmax (teacher_temperature) to
the student's (cosine x scale, the contrastive loss's temperature). The KL term is divided by the student
temperature squared, so `weight = 1` gives it the contrastive loss's gradient scale:

    loss = contrastive(rows) + weight * KL(softmax(labels / T_t) || softmax(scale * cos(q, [p, c]))) * scale^2

Example:
    >>> round(distillation_scale(scale=20.0), 1)
    400.0
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from torch import Tensor, nn

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


def distillation_scale(scale: float) -> float:
    """The factor that undoes KL's temperature squared, 1 / (1 / scale)^2."""
    return scale**2


class DistilledLoss(nn.Module):
    """`contrastive` on the first `contrastive_columns` columns plus `weight` x the teacher's KL on the rest.

    Args:
        model: The student.
        contrastive: A loss with `compute_loss_from_embeddings` (MultipleNegativesRankingLoss).
        contrastive_columns: Query, positive and explicit negatives: 2 + negatives per row.
        scale: The contrastive loss's similarity scale, the student's inverse temperature here too.
        teacher_temperature: Softmax temperature over the teacher's scores.
        weight: The distillation term's weight.
    """

    def __init__(
        self,
        model: SentenceTransformer,
        contrastive: nn.Module,
        *,
        contrastive_columns: int,
        scale: float,
        teacher_temperature: float,
        weight: float,
    ) -> None:
        from sentence_transformers.sentence_transformer.losses import DistillKLDivLoss
        from sentence_transformers.util import pairwise_cos_sim

        super().__init__()
        self.model = model
        self.contrastive = contrastive
        self.contrastive_columns = contrastive_columns
        self.weight = weight
        self.scale = scale
        self.kl = DistillKLDivLoss(
            model,
            similarity_fct=pairwise_cos_sim,
            student_temperature=1.0 / scale,
            teacher_temperature=teacher_temperature,
        )

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor) -> Tensor:
        from sentence_transformers.base.losses.merged_forward import embed_columns

        embeddings = embed_columns(self.model, sentence_features)
        split = self.contrastive_columns
        contrastive = self.contrastive.compute_loss_from_embeddings(embeddings[:split], labels)
        teacher = [embeddings[0], embeddings[1], *embeddings[split:]]
        distilled = self.kl.compute_loss_from_embeddings(teacher, labels.float())
        return contrastive + self.weight * distillation_scale(self.scale) * distilled
