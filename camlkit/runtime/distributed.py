"""Several GPUs through torchrun (DistributedDataParallel): this process' rank, and a check
that every replica ended with the same weights. One process on one device needs neither."""

import os

import torch
import torch.distributed as dist


def distributed_context():
    """(rank, world_size), initialising torch.distributed when started by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), world


def check_replicas_agree(net):
    """After DDP training every rank must hold the same weights; a cheap all-gathered checksum."""
    checksum = torch.stack([p.detach().double().sum() for p in net.parameters()]).sum()
    gathered = [torch.zeros_like(checksum) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, checksum)
    if any(not torch.equal(g, gathered[0]) for g in gathered):
        raise RuntimeError(f"DDP replicas diverged: weight checksums {[float(g) for g in gathered]}")
