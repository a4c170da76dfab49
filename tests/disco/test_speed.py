"""Each speed option's stated equivalence with the reference computation."""

import copy

import pytest
import torch
from torch import nn

from disco.grouped_bn import bn_groups, enable_grouped_bn
from disco.methods import DisCo, DisCoConfig
from disco.models import build_encoder
from disco.shuffle_bn import encode_in_groups
from disco.speed import SpeedOptions, apply_to_modules, strict_fp32, tf32_flags, wants_channels_last


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


def test_grouped_bn_groups_the_swav_heads_batchnorm1d_like_per_group_calls():
    """A SwAV-head teacher (Linear-BN1d-ReLU-Linear, toy width): its BN1d must see per-group
    statistics too, or the fused teacher targets differ from the official per-GPU ones."""
    torch.manual_seed(0)
    reference = build_encoder("r18", "swav", hidden=32).train().double()
    fused = copy.deepcopy(reference)
    enable_grouped_bn(fused)
    head_bn = fused.backbone.fc[1]
    assert isinstance(head_bn, nn.BatchNorm1d) and getattr(head_bn, "_grouped_bn", False)
    x = torch.randn(16, 3, 32, 32, dtype=torch.double)
    out_ref = encode_in_groups(reference, x, 4)
    with bn_groups(4):
        out_fused = fused(x)
    whole_batch = copy.deepcopy(reference)(x)  # what an ungrouped head BN computes
    assert (out_ref - whole_batch).abs().max() > 1e-3  # the test can tell the two apart
    assert torch.allclose(out_ref, out_fused, atol=1e-10)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        assert torch.allclose(
            getattr(reference.backbone.fc[1], name).double(), getattr(head_bn, name).double(), atol=1e-12
        ), name


def test_fused_teacher_targets_of_a_swav_head_teacher_equal_per_group_calls():
    torch.manual_seed(0)
    config = DisCoConfig(queue_size=64, bn_group_size=4)
    reference = DisCo(build_encoder("r18", "disco"), build_encoder("r18", "swav", hidden=32), config).train().double()
    fused = copy.deepcopy(reference)
    options = SpeedOptions(grouped_bn=True)
    fused.speed = options
    apply_to_modules([fused], options, torch.device("cpu"))
    fused.train()
    x = torch.randn(16, 3, 32, 32, dtype=torch.double)
    assert torch.allclose(reference.embed_teacher(x), fused.embed_teacher(x), atol=1e-10)
    assert torch.allclose(
        reference.teacher.backbone.fc[1].running_mean, fused.teacher.backbone.fc[1].running_mean, atol=1e-12
    )


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
    base = DisCo(
        build_encoder("mbv3", "disco"), build_encoder("r18", "mocov2"), DisCoConfig(queue_size=64, bn_group_size=8)
    )
    reference, optimized = copy.deepcopy(base).train(), copy.deepcopy(base)
    options = SpeedOptions.for_mode("optimized", torch.device("cpu"))
    assert options.channels_last and not options.bf16  # bf16 autocast is a deviation: opt-in (precision: bf16)
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
        assert abs(float(terms_ref[name].detach()) - float(terms_opt[name].detach())) < 1e-3 * max(
            1.0, abs(float(terms_ref[name].detach()))
        ), name


def test_batched_teacher_is_refused_with_the_faithful_train_mode_bn():
    with pytest.raises(ValueError, match="teacher_bn: eval"):
        DisCo(
            build_encoder("r18", "disco"),
            build_encoder("r18", "mocov2"),
            DisCoConfig(teacher_bn="train"),
            SpeedOptions(teacher_batched=True),
        )


def test_channels_last_goes_where_it_was_measured_to_pay():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert wants_channels_last(build_encoder("effb0", "mocov2"), cpu) and wants_channels_last(
        build_encoder("mbv3", "mocov2"), cpu
    )
    assert not wants_channels_last(build_encoder("r18", "mocov2"), cpu)  # ResNets: ~5% slower in NHWC on CPU
    assert wants_channels_last(build_encoder("r18", "mocov2"), cuda)
    assert wants_channels_last(build_encoder("r18", "mocov2"), cpu, bf16=True)  # oneDNN's bf16 convs: NHWC
    bf16_cpu = SpeedOptions.for_mode("optimized", cpu, precision="bf16")
    assert bf16_cpu.channels_last_input and not SpeedOptions.for_mode("optimized", cpu).channels_last_input


def test_the_optimized_structure_trains_in_fp32_unless_bf16_is_asked_for():
    from disco.tasks.inputs import runtime_of, training_input
    from disco.tasks.training import speed_options
    from harness.config import load_benchmarks
    from harness.matrix import Planner

    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    optimized = SpeedOptions.for_mode("optimized", cuda)
    assert not optimized.bf16 and optimized.grouped_bn and optimized.channels_last and optimized.batched_augment
    assert (
        SpeedOptions.for_mode("optimized", cuda, precision="bf16").bf16
        and SpeedOptions.for_mode("reference", cuda, precision="bf16").bf16
    )
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
        SpeedOptions.for_mode("optimized", cuda, precision="fp16")
    # a stage's numerics come from its config (its key), the structure from the runtime speed mode
    cell = Planner(load_benchmarks(), "tiny", smoke=True).cell("r50-effb0")
    config = cell.baseline.config
    # the tiny profile's teacher_precision: its teacher alone in bf16, both arms in fp32
    assert cell.teacher.config["precision"] == "bf16" and "precision" not in config
    assert all("precision" not in stage.config for stage in cell.methods.values())
    assert speed_options(training_input("pretrain", cell.teacher.config), runtime_of({}), cpu).bf16
    assert "precision" not in Planner(load_benchmarks(), "tiny", precision="fp32").cell("r50-effb0").teacher.config
    # ... and its distillation stages run the frozen teacher in bf16, the student in fp32
    distill = speed_options(training_input("distill", cell.methods["disco"].config), runtime_of({}), cpu)
    assert cell.methods["disco"].config["teacher_precision"] == "bf16" and distill.teacher_bf16 and not distill.bf16

    def speed(speed_mode: str, device: torch.device, **numerics: str) -> SpeedOptions:
        return speed_options(training_input("pretrain", config | numerics), runtime_of({"speed": speed_mode}), device)

    assert speed("optimized", cuda, precision="bf16").bf16
    assert not speed("optimized", cuda, precision="fp32").bf16 and not speed("optimized", cuda).bf16
    assert not speed("reference", cpu, views="per_image").batched_augment


def test_strict_fp32_turns_tf32_off_for_the_stage_and_restores_the_flags():
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True  # the GPU defaults at their loosest
    try:
        with strict_fp32():
            assert tf32_flags() == {"cudnn": False, "matmul": False}
        assert tf32_flags() == {"cudnn": True, "matmul": True}
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = True, False  # torch's defaults


def test_a_bf16_teacher_in_an_fp32_distillation_stage():
    """teacher_precision: bf16 (the tiny profile): the frozen teacher NHWC and in bf16 autocast, its
    embeddings within bf16 rounding of fp32; the student untouched (fp32, its own memory format)."""
    from disco.methods.disco_simclr import DisCoSimCLR
    from disco.methods.registry import DisCoSimCLRConfig

    cpu = torch.device("cpu")
    torch.manual_seed(0)
    student, teacher = build_encoder("r18", "disco"), build_encoder("r50", "mocov2", init="torchvision")
    views = torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32)
    config = DisCoSimCLRConfig(teacher_bn="eval")
    fp32 = DisCoSimCLR(student, teacher, config, SpeedOptions()).train()
    reference = fp32.embed_teacher(*views)
    options = SpeedOptions.for_mode("optimized", cpu, "eval", precision="fp32", teacher_precision="bf16")
    method = DisCoSimCLR(student, teacher, config, options).train()
    apply_to_modules([method], options, cpu)
    first_conv = next(m for m in teacher.modules() if isinstance(m, torch.nn.Conv2d))
    assert first_conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not next(m for m in student.modules() if isinstance(m, torch.nn.Conv2d)).weight.is_contiguous(
        memory_format=torch.channels_last
    )
    bf16 = method.embed_teacher(*views)
    for got, want in zip(bf16, reference):
        assert got.dtype == torch.float32 and not torch.equal(got, want)
        assert torch.allclose(got, want, atol=3e-2)
