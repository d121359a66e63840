"""DDP on CPU with the gloo backend and 2 processes."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bn_worker(rank: int, port: int, x: torch.Tensor, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    from edgemtl.train.syncbn import sync_batchnorm

    torch.manual_seed(0)
    bn = torch.nn.BatchNorm2d(3)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
    sync_batchnorm(bn)
    part = x[rank * 2 : (rank + 1) * 2].clone().requires_grad_(True)
    y = bn(part)
    (y * torch.arange(y.numel()).view_as(y).float()).sum().backward()
    torch.save(
        {"y": y.detach(), "gx": part.grad, "gw": bn.weight.grad, "rm": bn.running_mean},
        f"{out_dir}/r{rank}.pt",
    )
    dist.destroy_process_group()


def _check_against_full_batch(r: list[dict], ref: torch.nn.Module, x: torch.Tensor) -> None:
    """Each process's half == ``ref`` on the whole batch: outputs, input gradients, the summed
    weight gradient (the workers weight their outputs by arange, as here)."""
    xr = x.clone().requires_grad_(True)
    y = ref(xr)
    (y * torch.cat([torch.arange(y[:2].numel()).view_as(y[:2]).float()] * 2)).sum().backward()
    torch.testing.assert_close(torch.cat([r[0]["y"], r[1]["y"]]), y.detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.cat([r[0]["gx"], r[1]["gx"]]), xr.grad, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(r[0]["gw"] + r[1]["gw"], ref.weight.grad, atol=1e-4, rtol=1e-4)


def test_synced_batchnorm_equals_full_batch_bn(tmp_path):
    """Two processes with half a batch each == one process with the whole batch (values and grads)."""
    x = torch.randn(4, 3, 5, 5)
    mp.spawn(_bn_worker, args=(_free_port(), x, str(tmp_path)), nprocs=2, join=True)
    r = [torch.load(tmp_path / f"r{i}.pt", weights_only=True) for i in range(2)]
    ref = torch.nn.BatchNorm2d(3)
    with torch.no_grad():
        ref.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
    _check_against_full_batch(r, ref, x)
    torch.testing.assert_close(r[0]["rm"], ref.running_mean, atol=1e-6, rtol=1e-5)


def _task_bn(ctx):
    from edgemtl.models.modulation import TaskBatchNorm

    torch.manual_seed(0)
    m = TaskBatchNorm(torch.nn.BatchNorm2d(3), 2, ctx)
    with torch.no_grad():
        m.weight.uniform_(0.5, 2.0)
        m.running_mean.normal_()
    return m.train()


def _task_bn_worker(rank: int, port: int, x: torch.Tensor, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    from edgemtl.models.task_input import TaskContext
    from edgemtl.train.syncbn import sync_batchnorm

    ctx = TaskContext(2)
    m = _task_bn(ctx)
    assert sync_batchnorm(m) == 1
    part = x[rank * 2 : (rank + 1) * 2].clone().requires_grad_(True)
    ctx.set(torch.full((2,), 1))
    y = m(part)
    (y * torch.arange(y.numel()).view_as(y).float()).sum().backward()
    torch.save(
        {"y": y.detach(), "gx": part.grad, "gw": m.weight.grad, "rm": m.running_mean, "rv": m.running_var},
        f"{out_dir}/r{rank}.pt",
    )
    dist.destroy_process_group()


def test_synced_per_task_batchnorm_equals_full_batch(tmp_path):
    """Per-task BN (ASTMT) under DDP: two processes with half a batch each == one process with the
    whole batch, for the output, gradients and the task's running statistics on every process."""
    from edgemtl.models.task_input import TaskContext

    x = torch.randn(4, 3, 5, 5) * 2 + 1
    mp.spawn(_task_bn_worker, args=(_free_port(), x, str(tmp_path)), nprocs=2, join=True)
    r = [torch.load(tmp_path / f"r{i}.pt", weights_only=True) for i in range(2)]
    ctx = TaskContext(2)
    ref = _task_bn(ctx)
    ctx.set(torch.full((4,), 1))
    _check_against_full_batch(r, ref, x)
    for k in ("rm", "rv"):  # the same global statistics on both processes, task 0's rows untouched
        want = ref.running_mean if k == "rm" else ref.running_var
        for i in range(2):
            torch.testing.assert_close(r[i][k], want, atol=1e-5, rtol=1e-5)


def _grad_worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    from edgemtl.train.dist import average_gradients

    a, b, c = (torch.zeros(3, requires_grad=True) for _ in range(3))
    a.grad = torch.tensor([1.0, 2.0, 3.0]) * (rank + 1)  # rank 0: 1x, rank 1: 2x
    if rank == 1:
        b.grad = torch.tensor([4.0, 4.0, 4.0])  # unused on rank 0 in this step
    average_gradients([a, b])
    average_gradients([c])  # no gradient anywhere: left alone
    torch.save({"a": a.grad, "b": b.grad, "c_none": c.grad is None}, f"{out_dir}/g{rank}.pt")
    dist.destroy_process_group()


def test_gradients_outside_ddp_are_averaged_over_processes(tmp_path):
    """The discriminator and learnable balancer weights live outside the DDP-wrapped model: their
    gradients are averaged like DDP's, a process where a parameter went unused taking part with
    zeros, so every process takes the same step."""
    mp.spawn(_grad_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    for i in range(2):
        r = torch.load(tmp_path / f"g{i}.pt", weights_only=True)
        torch.testing.assert_close(r["a"], torch.tensor([1.5, 3.0, 4.5]))
        torch.testing.assert_close(r["b"], torch.tensor([2.0, 2.0, 2.0]))
        assert r["c_none"]


def _torchrun(recipe: Path, out: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "edgemtl", "train", str(recipe)]
    return subprocess.run(
        [*cmd, "--out", str(out), "--quiet"], capture_output=True, text=True, env=env, timeout=timeout
    )


@pytest.mark.slow
def test_torchrun_two_process_training(write_recipe, tmp_path):
    recipe = write_recipe(tasks=("semseg", "normals"))
    out = tmp_path / "ddp"
    r = _torchrun(recipe, out)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "world_size: 2" in (out / "config.yaml").read_text()
    assert (out / "best.pt").is_file() and "semseg" in (out / "summary.json").read_text()


@pytest.mark.slow
def test_torchrun_single_tasking_when_one_process_has_no_label_for_a_task(tmp_path):
    """Partially-labelled data under DDP: one train image has a depth label, so in one step per
    epoch one process's batch has depth and the other's has none. Both must still take the depth
    step together (synchronised BN, gradient all-reduce, the discriminator's averaged gradients:
    adversarial training is on), or the run waits forever."""
    import json

    import yaml
    from conftest import TINY_MODEL

    from edgemtl.data.synth import generate

    root = tmp_path / "d"
    generate(root, 16, (48, 64), seed=4, preset="nyud", workers=1, progress=False, splits=(0.5, 0.25, 0.25),
             tasks=["semseg", "depth"])  # fmt: skip
    train = (root / "splits" / "train.txt").read_text().split()
    for sid in train[1:]:
        next((root / "depth").glob(f"{sid}.*")).unlink()
    meta = json.loads((root / "dataset.json").read_text())
    (root / "dataset.json").write_text(json.dumps({**meta, "partial_labels": True}))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({
        "model": {**TINY_MODEL, "arch": "astmt"},
        "tasks": ["semseg", "depth"],
        "data": {"root": str(root)},
        "train": {"epochs": 2, "batch_size": 2, "adversarial": True},
    }))  # fmt: skip
    out = tmp_path / "run"
    try:
        r = _torchrun(recipe, out, timeout=300)
    except subprocess.TimeoutExpired:
        pytest.fail("DDP training hung: a process skipped a task step the other took")
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert {"semseg", "depth"} <= set(summary["metrics"])
