"""SEED (Fang et al., ICLR 2021): the student matches the frozen teacher's softmax similarity
distribution over a queue of teacher embeddings plus the sample's own teacher embedding. One view
per image; the teacher's BN in eval mode, as the official trainer (configurable)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from disco.contrast import enqueue
from disco.losses import seed_loss
from disco.methods.registry import SEEDConfig
from disco.methods.teacher import FrozenTeacher
from disco.shuffle_bn import encode_in_groups
from disco.speed import SpeedOptions


class SEED(FrozenTeacher):
    config: SEEDConfig
    queue: torch.Tensor  # [dim, K] buffer
    queue_ptr: torch.Tensor

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module,
        config: SEEDConfig,
        speed: SpeedOptions | None = None,
        dim: int = 128,
    ):
        super().__init__()
        self.config = config
        self.speed = speed or SpeedOptions()
        self.encoder = student
        self.attach_teacher(teacher)
        self.fused_bn_groups = False  # set by the speed options once grouped BN is installed
        self.register_buffer("queue", F.normalize(torch.randn(dim, config.queue_size), dim=0))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))

    @property
    def student(self) -> nn.Module:
        return self.encoder

    def _embed(self, encoder: nn.Module, x: torch.Tensor) -> torch.Tensor:
        groups = max(1, x.shape[0] // self.config.bn_group_size)
        return F.normalize(encode_in_groups(encoder, x, groups, self.fused_bn_groups), dim=1)

    def training_step(self, view1: torch.Tensor, view2: torch.Tensor) -> dict[str, torch.Tensor]:
        view1 = self.speed.prepare_input(view1)  # SEED trains on one augmented view per image
        with self.speed.autocast(view1.device), torch.profiler.record_function("student_forward"):
            student = self._embed(self.encoder, view1).float()
        with (
            torch.no_grad(),
            self.speed.teacher_autocast(view1.device),
            torch.profiler.record_function("teacher_forward"),
        ):
            teacher = self._embed(self.teacher, view1).float()
        # clone: the queue is updated in place before backward
        terms = seed_loss(
            student, teacher, self.queue.clone(), self.config.student_temperature, self.config.teacher_temperature
        )
        enqueue(self.queue, self.queue_ptr, teacher)
        return {"loss": terms["loss"], "soft_ce": terms["soft_ce"].detach()}
