"""DisCo over SwAV: DisCo's SwAV testbed (DisCo-pytorch swav-master/main_swav_distill.py). A SwAV
student (multi-crop, prototypes, Sinkhorn, queue, as disco/methods/swav.py) plus the MSE between its
L2-normalised embedding of every crop and the frozen teacher's embedding of the same crop. The teacher
sees every crop through the same multi-resolution forward, in eval mode (L378, L403-404), and its
embedding is not L2-normalised: the script builds it without `normalize=True` (L203-206; the SwAV
ResNet's `l2norm` defaults to False)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from disco.losses import disco_swav_loss
from disco.methods.registry import DisCoSwAVConfig
from disco.methods.swav import SwAV, embed_crops
from disco.methods.teacher import FrozenTeacher
from disco.models import Encoder
from disco.speed import SpeedOptions


class DisCoSwAV(FrozenTeacher):
    config: DisCoSwAVConfig
    teacher: Encoder  # embed_crops runs its backbone and head apart

    def __init__(self, student: Encoder, teacher: Encoder, config: DisCoSwAVConfig, speed: SpeedOptions | None = None):
        super().__init__()
        self.config = config
        self.base = SwAV(student, config, speed)
        self.attach_teacher(teacher)

    @property
    def student(self) -> nn.Module:
        return self.base.encoder

    def start_epoch(self, epoch: int) -> None:
        self.base.start_epoch(epoch)

    def before_optimizer_step(self) -> None:
        self.base.before_optimizer_step()

    @torch.no_grad()
    def embed_teacher(self, crops: Sequence[torch.Tensor]) -> torch.Tensor:
        """The teacher's raw (not normalised) embedding of every crop, crop after crop, in fp32."""
        crops = [self.base.speed.prepare_input(crop) for crop in crops]
        with self.base.speed.teacher_autocast(crops[0].device), torch.profiler.record_function("teacher_forward"):
            return embed_crops(self.teacher, crops).float()

    def training_step(self, *crops: torch.Tensor) -> dict[str, torch.Tensor]:
        self.base.normalize_prototypes()
        embedding, scores = self.base.embed(crops)
        teacher = self.embed_teacher(crops)
        swav = self.base.swapped_prediction(embedding, scores, crops[0].shape[0])
        terms = disco_swav_loss(swav, embedding, teacher, len(self.config.crops_for_assign), self.config.mse_weight)
        return {"loss": terms["loss"], **{name: value.detach() for name, value in terms.items() if name != "loss"}}
