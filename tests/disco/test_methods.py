import pytest
import torch

from disco.data.augment import mocov2_augmentation
from disco.data.batched_augment import BatchedMoCoV2Augmentation
from disco.data.datasets import TransformedImages, TwoViews
from disco.data.synthetic import synthetic_images
from disco.methods import DisCo, DisCoConfig, MoCoV2, MoCoV2Config
from disco.models import build_encoder
from disco.train import TrainRecipe, train


def small_disco(teacher_bn: str) -> DisCo:
    torch.manual_seed(0)
    return DisCo(
        build_encoder("r18", "disco"),
        build_encoder("r18", "mocov2"),
        DisCoConfig(queue_size=32, bn_group_size=4, teacher_bn=teacher_bn),
    )


def one_step(method: DisCo) -> None:
    method.train()
    views = torch.randn(8, 3, 32, 32), torch.randn(8, 3, 32, 32)
    optimizer = torch.optim.SGD([p for p in method.parameters() if p.requires_grad], lr=0.1)
    optimizer.zero_grad()
    method.training_step(*views)["loss"].backward()
    optimizer.step()


def test_teacher_gets_no_gradient_and_its_weights_do_not_change():
    method = small_disco("train")
    before = {k: v.clone() for k, v in method.teacher.named_parameters()}
    one_step(method)
    for name, param in method.teacher.named_parameters():
        assert param.grad is None
        assert torch.equal(param, before[name]), name
    assert any(p.grad is not None for p in method.student.parameters())


def test_faithful_teacher_bn_statistics_move_and_clean_mode_freezes_them():
    faithful, clean = small_disco("train"), small_disco("eval")
    for method, should_move in ((faithful, True), (clean, False)):
        bn = method.teacher.backbone.bn1
        mean_before, tracked_before = bn.running_mean.clone(), int(bn.num_batches_tracked)
        one_step(method)
        assert method.teacher.training is should_move
        assert (not torch.equal(bn.running_mean, mean_before)) is should_move
        # faithful: 2 views x 2 BN groups of 4 = 4 teacher forwards in one step
        assert int(bn.num_batches_tracked) - tracked_before == (4 if should_move else 0)


def test_key_encoder_receives_no_gradient_and_follows_the_query_by_ema():
    torch.manual_seed(0)
    method = MoCoV2(build_encoder("r18", "mocov2"), MoCoV2Config(queue_size=32, momentum=0.5, bn_group_size=4))
    method.train()
    key_before = [p.clone() for p in method.contrast.encoder_k.parameters()]
    loss = method.training_step(torch.randn(8, 3, 32, 32), torch.randn(8, 3, 32, 32))["loss"]
    loss.backward()
    assert all(p.grad is None for p in method.contrast.encoder_k.parameters())
    # query and key start equal, so the first EMA leaves the key unchanged; the pointer moved
    assert all(torch.equal(a, b) for a, b in zip(key_before, method.contrast.encoder_k.parameters()))
    assert int(method.contrast.queue_ptr) == 8


def _two_step_run(tmp_path, name: str, batched: bool = False) -> dict[str, torch.Tensor]:
    images = synthetic_images(16, 32)
    dataset = TransformedImages(images, None) if batched else TwoViews(images, mocov2_augmentation(32))
    augment = BatchedMoCoV2Augmentation(32) if batched else None
    torch.manual_seed(123)
    method = DisCo(
        build_encoder("r18", "disco"), build_encoder("r18", "mocov2"), DisCoConfig(queue_size=32, bn_group_size=4)
    )
    recipe = TrainRecipe(epochs=1, batch_size=8, limit_batches=2)
    train(method, dataset, recipe, tmp_path / name, seed=7, device=torch.device("cpu"), augment=augment)
    return method.state_dict()


@pytest.mark.parametrize("batched", [False, True], ids=["per-image-views", "batched-views"])
def test_seeded_two_step_run_is_bit_for_bit_reproducible(tmp_path, batched):
    first, second = _two_step_run(tmp_path, "a", batched), _two_step_run(tmp_path, "b", batched)
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key


def registered(name: str, **values):
    """A method built the way a stage builds it: its sections' values through the registry."""
    from disco.methods.registry import METHODS

    spec = METHODS[name]
    sections = {
        "mocov2": {"queue_size": 32, "momentum": 0.99, "temperature": 0.2, "bn_group_size": 4},
        "disco": {},
        "rkd": {},
        "seed_distill": {"queue_size": 32, "bn_group_size": 4},
    }
    config = spec.build_config(spec.resolve(sections))
    config.validate(8)
    torch.manual_seed(0)
    return spec.module_class()(build_encoder("r18", "disco"), build_encoder("r18", "mocov2"), config, **values)


def test_registry_lists_kinds_and_imports_without_torch():
    import subprocess
    import sys

    code = (
        "import sys; from disco.methods.registry import METHODS; "
        "print(sorted((n, s.kind) for n, s in METHODS.items()), 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "('disco', 'distill')" in out and "('mocov2', 'pretrain')" in out and out.strip().endswith("False")


def test_unknown_method_says_did_you_mean():
    from disco.methods.registry import UnknownMethod, method_spec

    with pytest.raises(UnknownMethod, match=r"method 'sed' is not implemented \(did you mean 'seed'\?\)"):
        method_spec("sed")


def test_only_mse_is_disco_with_ce_weight_zero_ce_still_logged_and_queued():
    method = registered("disco_only_mse")
    assert method.config.ce_weight == 0.0 and type(method) is DisCo
    method.train()
    terms = method.training_step(torch.randn(8, 3, 32, 32), torch.randn(8, 3, 32, 32))
    assert torch.allclose(terms["loss"].detach(), terms["mse_v1"] + terms["mse_v2"])
    assert terms["ce"] > 0 and int(method.contrast.queue_ptr) == 8


@pytest.mark.parametrize("name, use_mse", [("rkd", False), ("rkd_disco", True)])
def test_rkd_step_is_disco_step_with_rkd_terms(name, use_mse):
    method = registered(name)
    assert method.config.use_mse is use_mse and (method.config.distance_weight, method.config.angle_weight) == (1, 1)
    method.train()
    terms = method.training_step(torch.randn(8, 3, 32, 32), torch.randn(8, 3, 32, 32))
    expected = terms["ce"] + terms["rkd_distance"] + terms["rkd_angle"]
    if use_mse:
        expected = expected + terms["mse_v1"] + terms["mse_v2"]
    assert torch.allclose(terms["loss"].detach(), expected)
    terms["loss"].backward()
    assert all(p.grad is None for p in method.teacher.parameters())


def test_seed_queues_teacher_embeddings_and_trains_only_the_student():
    method = registered("seed")
    # the teacher temperature of SEED's code (--distill-t)
    assert (method.config.student_temperature, method.config.teacher_temperature) == (0.2, 1e-4)
    method.train()
    assert not method.teacher.training  # SEED's trainer: teacher.eval()
    view1 = torch.randn(8, 3, 32, 32)
    with torch.no_grad():
        expected_queue = torch.nn.functional.normalize(method.teacher(view1), dim=1).T
    before = {k: v.clone() for k, v in method.teacher.named_parameters()}
    terms = method.training_step(view1, torch.randn(8, 3, 32, 32))
    terms["loss"].backward()
    assert torch.allclose(method.queue[:, :8], expected_queue, atol=1e-6) and int(method.queue_ptr) == 8
    assert all(p.grad is None and torch.equal(p, before[k]) for k, p in method.teacher.named_parameters())
    assert any(p.grad is not None for p in method.student.parameters())
