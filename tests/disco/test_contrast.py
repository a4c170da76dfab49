import torch
from torch import nn

from disco.contrast import MomentumContrast
from disco.shuffle_bn import encode_in_groups, shuffled_encode


class RecordingBN(nn.Module):
    """Batch-norm without affine that records the size of every batch it normalises."""

    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm1d(4, affine=False)
        self.batch_sizes: list[int] = []

    def forward(self, x):
        self.batch_sizes.append(x.shape[0])
        return self.bn(x)


def group_normalise(x):
    return (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + 1e-5)


def test_momentum_update_moves_parameters_only_not_buffers():
    encoder = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    contrast = MomentumContrast(encoder, queue_size=8, momentum=0.9, temperature=0.2, bn_group_size=32, dim=4)
    with torch.no_grad():
        for param in encoder.parameters():
            param.add_(1.0)
        encoder[1].running_mean.fill_(5.0)
    key_before = [p.clone() for p in contrast.encoder_k.parameters()]
    contrast.momentum_update()
    for before, param_q, param_k in zip(key_before, encoder.parameters(), contrast.encoder_k.parameters()):
        assert torch.allclose(param_k, 0.9 * before + 0.1 * param_q)
    assert torch.all(contrast.encoder_k[1].running_mean == 0.0)  # buffers are not copied
    assert all(not p.requires_grad for p in contrast.encoder_k.parameters())


def test_queue_enqueue_and_wrap_around():
    contrast = MomentumContrast(nn.Identity(), queue_size=6, momentum=0.9, temperature=0.2, bn_group_size=32, dim=2)
    batches = [torch.full((2, 2), float(i)) for i in range(1, 5)]
    for batch in batches[:3]:
        contrast.enqueue(batch)
    assert int(contrast.queue_ptr) == 0  # 3 x 2 keys filled the 6 slots and wrapped
    assert torch.equal(contrast.queue[0], torch.tensor([1.0, 1.0, 2.0, 2.0, 3.0, 3.0]))
    contrast.enqueue(batches[3])
    assert int(contrast.queue_ptr) == 2
    assert torch.equal(contrast.queue[0], torch.tensor([4.0, 4.0, 2.0, 2.0, 3.0, 3.0]))


def test_enqueue_rejects_a_batch_that_does_not_divide_the_queue():
    contrast = MomentumContrast(nn.Identity(), queue_size=6, momentum=0.9, temperature=0.2, bn_group_size=32, dim=2)
    try:
        contrast.enqueue(torch.zeros(4, 2))
    except ValueError as exc:
        assert "multiple" in str(exc)
    else:
        raise AssertionError("a 4-key batch into a 6-slot queue must be refused")


def test_emulated_shuffle_bn_uses_shuffled_subbatches_with_own_statistics_and_restores_order():
    torch.manual_seed(0)
    x = torch.randn(8, 4) * torch.arange(1, 9).float().unsqueeze(1)  # very different rows
    encoder = RecordingBN().train()
    out = shuffled_encode(encoder, x, groups=2, generator=torch.Generator().manual_seed(123))
    perm = torch.randperm(8, generator=torch.Generator().manual_seed(123))
    assert encoder.batch_sizes == [4, 4]  # two sub-batches, BN statistics computed per sub-batch
    expected_shuffled = torch.cat([group_normalise(x[perm[:4]]), group_normalise(x[perm[4:]])])
    expected = torch.empty_like(expected_shuffled)
    expected[perm] = expected_shuffled  # back in the queries' order
    assert torch.allclose(out, expected, atol=1e-5)
    assert not torch.allclose(out, group_normalise(x), atol=1e-3)  # not whole-batch BN
    assert not torch.allclose(out, torch.cat([group_normalise(x[:4]), group_normalise(x[4:])]), atol=1e-3)  # shuffled


def test_encode_in_groups_single_group_is_plain_forward():
    encoder = RecordingBN().train()
    x = torch.randn(6, 4)
    assert torch.allclose(encode_in_groups(encoder, x, 1), group_normalise(x), atol=1e-5)
    assert encoder.batch_sizes == [6]
