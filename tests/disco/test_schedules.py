import pytest
import torch
from torch import nn

from disco.data.datasets import TwoViews
from disco.data.synthetic import synthetic_images
from disco.schedules import lr_at, warmup_scale
from disco.train import TrainRecipe, train


def test_warmup_scale_rises_linearly_step_by_step_to_one():
    # 2 warm-up epochs of 4 steps: 1/8 .. 8/8, then 1
    scales = [warmup_scale(epoch, step, 4, 2) for epoch in range(3) for step in range(1, 5)]
    assert scales == pytest.approx([1 / 8, 2 / 8, 3 / 8, 4 / 8, 5 / 8, 6 / 8, 7 / 8, 1.0, 1.0, 1.0, 1.0, 1.0])
    assert warmup_scale(0, 1, 4, 0) == 1.0  # no warm-up: the schedule's lr from the first step


def test_cosine_schedule_starts_at_the_base_lr_without_warmup():
    assert lr_at("cosine", 0.06, 0, 8) == pytest.approx(0.06)
    assert lr_at("cosine", 0.06, 4, 8) == pytest.approx(0.03)


class OneWeight(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1))

    def training_step(self, view1: torch.Tensor, view2: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": (self.weight * (view1.mean() + view2.mean() + 1)) ** 2}


def test_the_loop_ramps_the_lr_over_the_warmup_steps_then_follows_the_schedule(tmp_path, monkeypatch):
    seen: list[float] = []
    original_step = torch.optim.SGD.step

    def recording_step(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return original_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", recording_step)
    dataset = TwoViews(synthetic_images(16, 8), lambda image: torch.zeros(3, 8, 8))
    recipe = TrainRecipe(epochs=3, batch_size=4, lr=0.8, schedule="constant", warmup_epochs=1, limit_batches=4)
    state = train(OneWeight(), dataset, recipe, tmp_path / "stage", seed=0, device=torch.device("cpu"))
    assert seen == pytest.approx([0.2, 0.4, 0.6, 0.8] + [0.8] * 8)
    assert [entry["lr"] for entry in state.history] == pytest.approx([0.8, 0.8, 0.8])


def test_a_warmup_longer_than_the_training_is_refused():
    with pytest.raises(ValueError, match="warmup_epochs must be in"):
        TrainRecipe(epochs=2, batch_size=4, warmup_epochs=3).validate()
