"""Each speed option's stated equivalence with the reference computation."""

import copy

import pytest
import torch

from disco.grouped_bn import bn_groups, enable_grouped_bn
from disco.methods import DisCo, DisCoConfig
from disco.models import build_encoder
from disco.shuffle_bn import encode_in_groups
from disco.speed import SpeedOptions, apply_to_modules, wants_channels_last


@pytest.mark.parametrize("arch", ["r18", "mbv3"])
def test_grouped_bn_equals_sequential_groups_outputs_gradients_and_running_stats(arch):
    torch.manual_seed(0)
    reference = build_encoder(arch, "disco").train().double()
    fused = copy.deepcopy(reference)
    assert enable_grouped_bn(fused) > 0
    x, projection = torch.randn(16, 3, 32, 32, dtype=torch.double), torch.randn(16, 128, dtype=torch.double)
    out_ref = encode_in_groups(reference, x, 4)
    with bn_groups(4):
        out_fused = fused(x)
    assert torch.allclose(out_ref, out_fused, atol=1e-10)
    (out_ref * projection).sum().backward()
    (out_fused * projection).sum().backward()
    for (name, p_ref), p_fused in zip(reference.named_parameters(), fused.parameters()):
        scale = p_ref.grad.abs().max().item()
        if scale > 1e-8:  # biases followed by another BN have a zero true gradient: rounding noise only
            assert torch.allclose(p_ref.grad, p_fused.grad, atol=1e-8 * max(1.0, scale)), name
    for (name, ref), fus in zip(reference.state_dict().items(), fused.state_dict().values()):
        assert torch.allclose(ref.double(), fus.double(), atol=1e-10), name  # running stats, batches tracked


def test_grouped_bn_is_inactive_outside_a_group_context_and_in_eval_mode():
    torch.manual_seed(0)
    reference = build_encoder("r18", "disco")
    fused = copy.deepcopy(reference)
    enable_grouped_bn(fused)
    x = torch.randn(8, 3, 32, 32)
    assert torch.equal(reference.train()(x), fused.train()(x))
    with bn_groups(4):
        assert torch.equal(reference.eval()(x), fused.eval()(x))


def test_optimized_cpu_step_matches_reference_within_rounding():
    torch.manual_seed(0)
    base = DisCo(build_encoder("mbv3", "disco"), build_encoder("r18", "mocov2"), DisCoConfig(queue_size=64, bn_group_size=8))
    reference, optimized = copy.deepcopy(base).train(), copy.deepcopy(base)
    options = SpeedOptions.for_mode("optimized", torch.device("cpu"))
    assert options.channels_last and not options.bf16  # bf16 autocast is a deviation: CUDA only
    options = SpeedOptions(grouped_bn=True, channels_last=True)  # every exact option at once
    optimized.speed = options
    apply_to_modules([optimized], options, torch.device("cpu"))
    optimized.train()
    # NHWC where it pays on CPU: the depthwise-conv student and its key encoder, not the ResNet teacher
    assert optimized.student.backbone.conv_stem.weight.is_contiguous(memory_format=torch.channels_last)
    assert optimized.contrast.encoder_k.backbone.conv_stem.weight.is_contiguous(memory_format=torch.channels_last)
    assert optimized.teacher.backbone.conv1.weight.is_contiguous()
    views = torch.randn(16, 3, 32, 32), torch.randn(16, 3, 32, 32)
    torch.manual_seed(1)
    terms_ref = reference.training_step(*views)
    torch.manual_seed(1)
    terms_opt = optimized.training_step(*views)
    for name in terms_ref:
        assert abs(float(terms_ref[name].detach()) - float(terms_opt[name].detach())) < 1e-3 * max(1.0, abs(float(terms_ref[name].detach()))), name


def test_batched_teacher_is_refused_with_the_faithful_train_mode_bn():
    with pytest.raises(ValueError, match="teacher_bn: eval"):
        DisCo(build_encoder("r18", "disco"), build_encoder("r18", "mocov2"), DisCoConfig(teacher_bn="train"), SpeedOptions(teacher_batched=True))


def test_channels_last_goes_where_it_was_measured_to_pay():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert wants_channels_last(build_encoder("effb0", "mocov2"), cpu) and wants_channels_last(build_encoder("mbv3", "mocov2"), cpu)
    assert not wants_channels_last(build_encoder("r18", "mocov2"), cpu)  # ResNets: ~5% slower in NHWC on CPU
    assert wants_channels_last(build_encoder("r18", "mocov2"), cuda)
