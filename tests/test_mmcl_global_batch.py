"""FAM with several processes contrasts the global batch, with the right gradients.

Two CPU processes (gloo) each hold half of a batch; with ``gather`` the loss each computes
must equal the one-process loss on the whole batch, and the DDP-averaged gradients of the
FAM MLP and of the skeleton features must equal the one-process gradients.
"""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from train.mmcl.fam import FeatureAlignment

WORLD = 2
BATCH, RGB_WIDTH, WIDTH = 6, 5, 4


def _inputs():
    generator = torch.Generator().manual_seed(3)
    skeleton = torch.randn(BATCH, WIDTH, generator=generator)
    rgb = torch.randn(BATCH, RGB_WIDTH, generator=generator)
    torch.manual_seed(0)
    return skeleton, rgb, FeatureAlignment(RGB_WIDTH, WIDTH, tau=0.4)


def _worker(rank: int, out_dir: str, gather: bool) -> None:
    torch.set_num_threads(1)
    # a file rendezvous: no TCP port to pick or to race for
    dist.init_process_group("gloo", init_method=f"file://{out_dir}/rendezvous", rank=rank,
                            world_size=WORLD)
    try:
        skeleton, rgb, fam = _inputs()
        share = BATCH // WORLD
        local = skeleton[rank * share:(rank + 1) * share].clone().requires_grad_(True)
        loss = fam(local, rgb[rank * share:(rank + 1) * share], gather=gather)
        loss.backward()
        grads = [p.grad.clone() for p in fam.parameters()]
        for grad in grads:                 # what DDP does: average over processes
            dist.all_reduce(grad)
            grad /= WORLD
        # a skeleton row's gradient reaches the GCN of its own process only
        torch.save({"loss": loss.detach(), "grads": grads, "feature_grad": local.grad},
                   os.path.join(out_dir, f"rank{rank}.pt"))
        dist.barrier()           # nobody tears the group down while the other still uses it
    finally:
        dist.destroy_process_group()
    # Done and saved: leave without interpreter finalization. Gloo's threads can still hold
    # the autograd all_gather's work while the interpreter tears down, which aborts the
    # process ("terminate called without an active exception", SIGABRT) now and then.
    os._exit(0)


def _run(tmp_path, gather: bool) -> list[dict]:
    mp.spawn(_worker, args=(str(tmp_path), gather), nprocs=WORLD, join=True)
    return [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]


@pytest.mark.skipif(not dist.is_available(), reason="torch without distributed support")
def test_two_processes_give_the_loss_and_gradients_of_the_whole_batch(tmp_path):
    skeleton, rgb, fam = _inputs()
    skeleton.requires_grad_(True)
    expected = fam(skeleton, rgb)
    expected.backward()
    results = _run(tmp_path, gather=True)
    for result in results:
        assert torch.allclose(result["loss"], expected.detach(), atol=1e-6)
        for got, want in zip(result["grads"], [p.grad for p in fam.parameters()]):
            assert torch.allclose(got, want, atol=1e-6)
    # each process's own rows, times the world size that DDP's average divides away
    feature_grads = torch.cat([r["feature_grad"] for r in results]) / WORLD
    assert torch.allclose(feature_grads, skeleton.grad, atol=1e-6)


@pytest.mark.skipif(not dist.is_available(), reason="torch without distributed support")
def test_without_gathering_each_process_contrasts_only_its_half(tmp_path):
    skeleton, rgb, fam = _inputs()
    whole = fam(skeleton, rgb)
    results = _run(tmp_path, gather=False)
    halves = [fam(skeleton[r * 3:(r + 1) * 3], rgb[r * 3:(r + 1) * 3]) for r in range(WORLD)]
    for result, half in zip(results, halves):
        assert torch.allclose(result["loss"], half.detach(), atol=1e-6)
        assert not torch.allclose(result["loss"], whole.detach(), atol=1e-3)
