"""The frozen teacher every distillation method shares (disco/methods/teacher.py): no gradients, and
its BN mode follows `teacher_bn` whenever the method is put in training mode."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from torch import nn

from disco.methods import SEED, DisCo, DisCoSimCLR, DisCoSwAV
from disco.methods.teacher import FrozenTeacher


@dataclass(frozen=True)
class Config:
    teacher_bn: str


class Distiller(FrozenTeacher):
    def __init__(self, teacher_bn: str):
        super().__init__()
        self.config = Config(teacher_bn)
        self.student = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
        self.attach_teacher(nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4)))


@pytest.mark.parametrize("teacher_bn, teacher_trains", [("eval", False), ("train", True)])
def test_the_teacher_is_frozen_and_its_bn_mode_follows_teacher_bn(teacher_bn, teacher_trains):
    method = Distiller(teacher_bn)
    assert not any(p.requires_grad for p in method.teacher.parameters())
    assert all(p.requires_grad for p in method.student.parameters())
    assert method.train() is method
    assert method.student.training and method.teacher.training is teacher_trains
    method.eval()
    assert not method.student.training and not method.teacher.training
    assert [name for name, _ in method.named_children()] == ["student", "teacher"]  # the checkpoint's keys


def test_every_method_with_a_teacher_uses_it():
    assert all(issubclass(method, FrozenTeacher) for method in (DisCo, DisCoSimCLR, DisCoSwAV, SEED))
