"""DisCo: MoCo-v2 on the student plus MSE to a frozen teacher's embedding on both views
(docs/protocol.md 1.3-1.4)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from disco.contrast import MomentumContrast
from disco.losses import disco_loss
from disco.methods.registry import DisCoConfig
from disco.methods.teacher import FrozenTeacher
from disco.shuffle_bn import encode_in_groups
from disco.speed import SpeedOptions


class DisCo(FrozenTeacher):
    config: DisCoConfig

    def __init__(self, student: nn.Module, teacher: nn.Module, config: DisCoConfig, speed: SpeedOptions | None = None):
        super().__init__()
        self.config = config
        self.speed = speed or SpeedOptions()
        if self.speed.teacher_batched and config.teacher_bn != "eval":
            raise ValueError(
                "teacher_batched changes the faithful train-mode teacher BN statistics; use teacher_bn: eval"
            )
        self.contrast = MomentumContrast(
            student, config.queue_size, config.momentum, config.temperature, config.bn_group_size
        )
        self.attach_teacher(teacher)

    @property
    def student(self) -> nn.Module:
        return self.contrast.encoder_q

    @torch.no_grad()
    def embed_teacher(self, x: torch.Tensor) -> torch.Tensor:
        with self.speed.teacher_autocast(x.device), torch.profiler.record_function("teacher_forward"):
            groups = self.contrast.bn_groups(x.shape[0])
            return F.normalize(encode_in_groups(self.teacher, x, groups, self.contrast.fused_bn_groups).float(), dim=1)

    @torch.no_grad()
    def teacher_targets_batched(self, view1: torch.Tensor, view2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both views in one teacher call: exact because the teacher BN is then in eval mode."""
        both = self.embed_teacher(torch.cat([view1, view2]))
        return both[: len(view1)], both[len(view1) :]

    def embeddings(self, view1: torch.Tensor, view2: torch.Tensor) -> dict[str, torch.Tensor]:
        """The four L2-normalised embeddings of one official step plus the shuffled keys k, in fp32."""
        view1, view2 = self.speed.prepare_input(view1), self.speed.prepare_input(view2)
        device = view1.device
        with self.speed.autocast(device), torch.profiler.record_function("student_forward"):
            q = self.contrast.embed_query(view1)
            qk = self.contrast.embed_query(view2)
        with torch.no_grad(), self.speed.autocast(device):
            # the official order: EMA, teacher(view2), shuffled keys, teacher(view1); the teacher's
            # train-mode BN makes the order of its two calls part of the computation
            self.contrast.momentum_update()
            if self.speed.teacher_batched:
                teacher_q, teacher_qk = self.teacher_targets_batched(view1, view2)
                k = self.contrast.embed_keys(view2)
            else:
                teacher_qk = self.embed_teacher(view2)
                k = self.contrast.embed_keys(view2)
                teacher_q = self.embed_teacher(view1)
        return {"q": q.float(), "qk": qk.float(), "k": k.float(), "teacher_q": teacher_q, "teacher_qk": teacher_qk}

    def loss_terms(self, logits: torch.Tensor, embedded: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return disco_loss(
            logits,
            embedded["q"],
            embedded["qk"],
            embedded["teacher_q"],
            embedded["teacher_qk"],
            self.config.mse_per_sample_weight,
            self.config.ce_weight,
        )

    def training_step(self, view1: torch.Tensor, view2: torch.Tensor) -> dict[str, torch.Tensor]:
        embedded = self.embeddings(view1, view2)
        logits = self.contrast.logits(embedded["q"], embedded["k"])
        terms = self.loss_terms(logits, embedded)
        self.contrast.enqueue(embedded["k"])
        return {"loss": terms["loss"], **{name: value.detach() for name, value in terms.items() if name != "loss"}}
