"""DisCo over SimCLR: SimCLR's NT-Xent on the student plus DisCo's MSE of each view's student
embedding to the frozen teacher's (the paper's composition, as its SwAV testbed composes DisCo with
SwAV: the base method's loss + the MSE terms). The tiny profile's distillation arm."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from disco.losses import disco_terms, nt_xent
from disco.methods.registry import DisCoSimCLRConfig
from disco.methods.simclr import SimCLR
from disco.methods.teacher import FrozenTeacher
from disco.speed import SpeedOptions


class DisCoSimCLR(FrozenTeacher):
    config: DisCoSimCLRConfig

    def __init__(
        self, student: nn.Module, teacher: nn.Module, config: DisCoSimCLRConfig, speed: SpeedOptions | None = None
    ):
        super().__init__()
        self.config = config
        self.base = SimCLR(student, config, speed)
        self.attach_teacher(teacher)

    @property
    def student(self) -> nn.Module:
        return self.base.encoder

    @torch.no_grad()
    def embed_teacher(self, view1: torch.Tensor, view2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The teacher's embedding of each view: one call in eval mode (exact), a call per view in
        train mode (its BN then normalises over each view's batch, as DisCo's per-view calls)."""
        view1, view2 = self.base.speed.prepare_input(view1), self.base.speed.prepare_input(view2)
        with self.base.speed.teacher_autocast(view1.device), torch.profiler.record_function("teacher_forward"):
            if self.config.teacher_bn == "eval":
                both = F.normalize(self.teacher(torch.cat([view1, view2])).float(), dim=1)
                return both[: len(view1)], both[len(view1) :]
            return tuple(F.normalize(self.teacher(view).float(), dim=1) for view in (view1, view2))  # type: ignore[return-value]

    def training_step(self, view1: torch.Tensor, view2: torch.Tensor) -> dict[str, torch.Tensor]:
        z1, z2 = self.base.embed_views(view1, view2)
        teacher1, teacher2 = self.embed_teacher(view1, view2)
        terms = disco_terms(
            nt_xent(z1, z2, self.config.temperature),
            z1,
            z2,
            teacher1,
            teacher2,
            self.config.mse_per_sample_weight,
            self.config.ce_weight,
        )
        return {"loss": terms["loss"], **{name: value.detach() for name, value in terms.items() if name != "loss"}}
