"""The official SwAV code, copied for comparison tests only (not used by disco-bench).

From facebookresearch/swav, main_swav.py (commit 06b1b7cbaf6ba2a792300d79c7299db98b93b7f9):
`distributed_sinkhorn` verbatim, and the loss part of `train` (its "swav loss" block) verbatim inside
a function; `args` becomes a namespace argument and `dist.all_reduce` a no-op (one process, where
the official all-reduce of a single rank leaves the tensor as it is). Only the wrapping lines are ours.

Below them, transcriptions of whole training epochs: main_swav.py `train` (L259-350) and DisCo-pytorch
swav-master/main_swav_distill.py `train` (commit 1d732c87e32308545680dc4b76c1b124870a2f79, L370-473), and
the model's multi-resolution forward (src/resnet50.py L297-323, the same in DisCo's copy and in its
efficientnet_swav.py L452-481), line for line, with these changes only: no DDP wrapper
(`model.module.prototypes` is `model.prototypes`), no `.cuda()`, no apex (fp32, `loss.backward()`), the
optimizer a plain SGD (the official wraps it in LARC) whose learning rate is not scheduled, no logging
or meters, and the backbone of the model (`forward_backbone`) is a disco-bench encoder's pooled features.

Copyright (c) Facebook, Inc. and its affiliates. All rights reserved.
Licensed under the Creative Commons Attribution-NonCommercial 4.0 International license
(https://github.com/facebookresearch/swav/blob/main/LICENSE).
"""
# ruff: noqa
# mypy: ignore-errors

from types import SimpleNamespace

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class dist:  # one process: all_reduce over a single rank is the identity
    @staticmethod
    def all_reduce(tensor):
        return None


args = SimpleNamespace()


def official_loss(output, embedding, bs, queue, prototypes_weight, namespace):
    args.__dict__.update(vars(namespace))
    use_the_queue = False
    # ============ swav loss ... ============
    loss = 0
    for i, crop_id in enumerate(args.crops_for_assign):
        with torch.no_grad():
            out = output[bs * crop_id: bs * (crop_id + 1)].detach()

            # time to use the queue
            if queue is not None:
                if use_the_queue or not torch.all(queue[i, -1, :] == 0):
                    use_the_queue = True
                    out = torch.cat((torch.mm(
                        queue[i],
                        prototypes_weight.t()
                    ), out))
                # fill the queue
                queue[i, bs:] = queue[i, :-bs].clone()
                queue[i, :bs] = embedding[crop_id * bs: (crop_id + 1) * bs]

            # get assignments
            q = distributed_sinkhorn(out)[-bs:]

        # cluster assignment prediction
        subloss = 0
        for v in np.delete(np.arange(np.sum(args.nmb_crops)), crop_id):
            x = output[bs * v: bs * (v + 1)] / args.temperature
            subloss -= torch.mean(torch.sum(q * F.log_softmax(x, dim=1), dim=1))
        loss += subloss / (np.sum(args.nmb_crops) - 1)
    loss /= len(args.crops_for_assign)
    return loss


@torch.no_grad()
def distributed_sinkhorn(out):
    Q = torch.exp(out / args.epsilon).t() # Q is K-by-B for consistency with notations from our paper
    B = Q.shape[1] * args.world_size # number of samples to assign
    K = Q.shape[0] # how many prototypes

    # make the matrix sums to 1
    sum_Q = torch.sum(Q)
    dist.all_reduce(sum_Q)
    Q /= sum_Q

    for it in range(args.sinkhorn_iterations):
        # normalize each row: total weight per prototype must be 1/K
        sum_of_rows = torch.sum(Q, dim=1, keepdim=True)
        dist.all_reduce(sum_of_rows)
        Q /= sum_of_rows
        Q /= K

        # normalize each column: total weight per sample must be 1/B
        Q /= torch.sum(Q, dim=0, keepdim=True)
        Q /= B

    Q *= B # the colomns must sum to 1 so that Q is an assignment
    return Q.t()


# ---------------------------------------------------------------- src/resnet50.py L297-323


class OfficialMultiCropModel(torch.nn.Module):
    """SwAV's ResNet as main_swav.py uses it: `forward_backbone` the encoder's pooled features, then
    `forward_head` (L297-306) and `forward` (L308-323) as written."""

    def __init__(self, encoder, prototypes, normalize):
        super().__init__()
        self.encoder = encoder  # the backbone; its projection head is `projection_head` below
        self.projection_head = getattr(encoder.backbone, encoder.head_name)
        self.l2norm = normalize
        self.prototypes = prototypes

    def forward_backbone(self, x):
        return self.encoder.features(x)

    def forward_head(self, x):
        if self.projection_head is not None:
            x = self.projection_head(x)

        if self.l2norm:
            x = nn.functional.normalize(x, dim=1, p=2)

        if self.prototypes is not None:
            return x, self.prototypes(x)
        return x

    def forward(self, inputs):
        if not isinstance(inputs, list):
            inputs = [inputs]
        idx_crops = torch.cumsum(torch.unique_consecutive(
            torch.tensor([inp.shape[-1] for inp in inputs]),
            return_counts=True,
        )[1], 0)
        start_idx = 0
        for end_idx in idx_crops:
            _out = self.forward_backbone(torch.cat(inputs[start_idx: end_idx]))
            if start_idx == 0:
                output = _out
            else:
                output = torch.cat((output, _out))
            start_idx = end_idx
        return self.forward_head(output)



# ---------------------------------------------------------------- main_swav.py L259-350


def train(train_loader, model, optimizer, epoch, lr_schedule, queue):
    losses = []

    model.train()
    use_the_queue = False

    for it, inputs in enumerate(train_loader):
        # update learning rate
        iteration = epoch * len(train_loader) + it

        # normalize the prototypes
        with torch.no_grad():
            w = model.prototypes.weight.data.clone()
            w = nn.functional.normalize(w, dim=1, p=2)
            model.prototypes.weight.copy_(w)

        # ============ multi-res forward passes ... ============
        embedding, output = model(inputs)
        embedding = embedding.detach()
        bs = inputs[0].size(0)

        # ============ swav loss ... ============
        loss = 0
        for i, crop_id in enumerate(args.crops_for_assign):
            with torch.no_grad():
                out = output[bs * crop_id: bs * (crop_id + 1)].detach()

                # time to use the queue
                if queue is not None:
                    if use_the_queue or not torch.all(queue[i, -1, :] == 0):
                        use_the_queue = True
                        out = torch.cat((torch.mm(
                            queue[i],
                            model.prototypes.weight.t()
                        ), out))
                    # fill the queue
                    queue[i, bs:] = queue[i, :-bs].clone()
                    queue[i, :bs] = embedding[crop_id * bs: (crop_id + 1) * bs]

                # get assignments
                q = distributed_sinkhorn(out)[-bs:]

            # cluster assignment prediction
            subloss = 0
            for v in np.delete(np.arange(np.sum(args.nmb_crops)), crop_id):
                x = output[bs * v: bs * (v + 1)] / args.temperature
                subloss -= torch.mean(torch.sum(q * F.log_softmax(x, dim=1), dim=1))
            loss += subloss / (np.sum(args.nmb_crops) - 1)
        loss /= len(args.crops_for_assign)

        # ============ backward and optim step ... ============
        optimizer.zero_grad()
        loss.backward()
        # cancel gradients for the prototypes
        if iteration < args.freeze_prototypes_niters:
            for name, p in model.named_parameters():
                if "prototypes" in name:
                    p.grad = None
        optimizer.step()

        losses.append(loss.item())
    return losses, queue


# ---------------------------------------------------------------- main_swav_distill.py L370-473


def train_distill(train_loader, teacher_model, model, optimizer, epoch, lr_schedule, queue):
    losses = []

    model.train()
    teacher_model.eval()
    use_the_queue = False

    for it, inputs in enumerate(train_loader):
        # update learning rate
        iteration = epoch * len(train_loader) + it

        # normalize the prototypes
        with torch.no_grad():
            w = model.prototypes.weight.data.clone()
            w = nn.functional.normalize(w, dim=1, p=2)
            model.prototypes.weight.copy_(w)

        # ============ multi-res forward passes ... ============
        embedding, output = model(inputs)
        s_embedding = embedding.clone()
        embedding = embedding.detach()
        bs = inputs[0].size(0)

        with torch.no_grad():
            t_embedding, _ = teacher_model(inputs)

        mse_loss = torch.nn.functional.mse_loss(s_embedding, t_embedding)

        # ============ swav loss ... ============
        loss = 0
        for i, crop_id in enumerate(args.crops_for_assign):
            with torch.no_grad():
                out = output[bs * crop_id: bs * (crop_id + 1)].detach()

                # time to use the queue
                if queue is not None:
                    if use_the_queue or not torch.all(queue[i, -1, :] == 0):
                        use_the_queue = True
                        out = torch.cat((torch.mm(
                            queue[i],
                            model.prototypes.weight.t()
                        ), out))
                    # fill the queue
                    queue[i, bs:] = queue[i, :-bs].clone()
                    queue[i, :bs] = embedding[crop_id * bs: (crop_id + 1) * bs]

                # get assignments
                q = distributed_sinkhorn(out)[-bs:]

            # cluster assignment prediction
            subloss = 0
            for v in np.delete(np.arange(np.sum(args.nmb_crops)), crop_id):
                x = output[bs * v: bs * (v + 1)] / args.temperature
                subloss -= torch.mean(torch.sum(q * F.log_softmax(x, dim=1), dim=1))
            loss += subloss / (np.sum(args.nmb_crops) - 1)
        # MSE
        loss = loss + mse_loss
        loss /= len(args.crops_for_assign)

        # ============ backward and optim step ... ============
        optimizer.zero_grad()
        loss.backward()
        # cancel gradients for the prototypes
        if iteration < args.freeze_prototypes_niters:
            for name, p in model.named_parameters():
                if "prototypes" in name:
                    p.grad = None
        optimizer.step()

        losses.append(loss.item())
    return losses, queue


def new_queue(epoch, queue):
    """main_swav.py L225-231 (main_swav_distill.py L335-341): the queue starts, empty, at its epoch."""
    if args.queue_length > 0 and epoch >= args.epoch_queue_starts and queue is None:
        queue = torch.zeros(
            len(args.crops_for_assign),
            args.queue_length // args.world_size,
            args.feat_dim,
        )
    return queue
