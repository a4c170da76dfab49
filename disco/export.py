"""Our encoders in the official checkpoint layout (docs/protocol.md sections 5.1 and 5.4), so the
official evaluation scripts (main_lincls.py, main_lincls_semi.py, cifar_main_lincls.py) and MoCo's
convert-pretrain-to-detectron2.py read them as they read a DisCo/main.py checkpoint:
{'epoch', 'arch', 'state_dict'} with the query encoder under `module.encoder_q.` and its projection
head under the backbone's own slot (`fc` for ResNets, `classifier` for EfficientNet/MobileNet).
The key encoder, teacher and queue are left out: no evaluation reads them."""

from __future__ import annotations

from typing import Any

from disco.archs import official_arch_name
from disco.models import Encoder

OFFICIAL_PREFIX = "module.encoder_q."


def official_payload(encoder: Encoder, arch: str, epoch: int | None = None) -> dict[str, Any]:
    state = {
        OFFICIAL_PREFIX + key: value.detach().cpu().clone() for key, value in encoder.backbone.state_dict().items()
    }
    return {"epoch": int(epoch or 0), "arch": official_arch_name(arch), "state_dict": state}
