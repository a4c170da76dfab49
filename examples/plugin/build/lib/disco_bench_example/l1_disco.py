"""DisCo-L1: SimCLR's NT-Xent plus, per view, the L1 distance of the student's embedding to the frozen
teacher's, weighted as DisCo weights its MSE."""

import torch

from disco.losses import nt_xent
from disco.methods.disco_simclr import DisCoSimCLR


class L1DisCo(DisCoSimCLR):
    def training_step(self, view1: torch.Tensor, view2: torch.Tensor) -> dict[str, torch.Tensor]:
        z1, z2 = self.base.embed_views(view1, view2)
        teacher1, teacher2 = self.embed_teacher(view1, view2)
        weight = self.config.mse_per_sample_weight or 1.0
        ce = nt_xent(z1, z2, self.config.temperature)
        l1_view1 = weight * (z1 - teacher1).abs().sum(dim=1).mean()
        l1_view2 = weight * (z2 - teacher2).abs().sum(dim=1).mean()
        loss = self.config.ce_weight * ce + l1_view1 + l1_view2
        return {"loss": loss, "ce": ce.detach(), "l1_v1": l1_view1.detach(), "l1_v2": l1_view2.detach()}
