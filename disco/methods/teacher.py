"""The frozen teacher of a distillation method, one mechanism for every method that has one (DisCo,
DisCo over SimCLR or SwAV, SEED)."""

from __future__ import annotations

from typing import Protocol, TypeVar

from torch import nn

Distiller = TypeVar("Distiller", bound="FrozenTeacher")


class TeacherBNConfig(Protocol):
    @property
    def teacher_bn(self) -> str: ...


class FrozenTeacher(nn.Module):
    """A method's base class: `attach_teacher` registers the teacher and stops its gradients; whenever
    the method trains, the teacher's BN runs in eval mode if `config.teacher_bn` is `eval` (SEED's
    trainer, DisCo's SwAV testbed), in train mode otherwise (DisCo's main.py)."""

    config: TeacherBNConfig
    teacher: nn.Module

    def attach_teacher(self, teacher: nn.Module) -> None:
        self.teacher = teacher
        for param in self.teacher.parameters():
            param.requires_grad = False

    def train(self: Distiller, mode: bool = True) -> Distiller:
        super().train(mode)
        if self.config.teacher_bn == "eval":
            self.teacher.eval()
        return self
