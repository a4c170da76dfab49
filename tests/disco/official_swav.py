"""The official SwAV loss, copied for comparison tests only (not used by disco-bench).

From facebookresearch/swav, main_swav.py (commit 06b1b7cbaf6ba2a792300d79c7299db98b93b7f9):
`distributed_sinkhorn` verbatim, and the loss part of `train` (its "swav loss" block) verbatim inside
a function; `args` becomes a namespace argument and `dist.all_reduce` a no-op (one process, where
the official all-reduce of a single rank leaves the tensor as it is). Only the wrapping lines are ours.

Copyright (c) Facebook, Inc. and its affiliates. All rights reserved.
Licensed under the Creative Commons Attribution-NonCommercial 4.0 International license
(https://github.com/facebookresearch/swav/blob/main/LICENSE).
"""
# ruff: noqa
# mypy: ignore-errors

from types import SimpleNamespace

import numpy as np
import torch
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
