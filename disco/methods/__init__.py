"""Training methods, one small file each. A method is an nn.Module with
`training_step(view1, view2) -> dict of losses ("loss" is optimised)` and a `student` encoder."""

from disco.methods.disco import DisCo, DisCoConfig
from disco.methods.mocov2 import MoCoV2, MoCoV2Config

__all__ = ["DisCo", "DisCoConfig", "MoCoV2", "MoCoV2Config"]
