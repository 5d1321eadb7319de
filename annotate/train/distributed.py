"""Where and how the trainer computes: device, mixed precision, DistributedDataParallel.

Everything device- or process-group-specific lives here, so the training loop
(``annotate.train.engine``) reads the same on one CPU, one GPU or many:

- ``resolve_device`` / ``resolve_amp`` / ``channels_last_enabled``: the ``engine`` config
  keys made concrete (``auto`` = CUDA, bf16 and channels_last when a GPU is there; plain
  fp32 on the CPU);
- ``autocast_for`` and ``grad_scaler``: the autocast context and the GradScaler (active for
  fp16 only: bf16 has fp32's range and needs no loss scaling), both no-ops when ``amp`` is
  ``off``;
- ``setup_distributed``: joins the ``torchrun`` process group (``RANK``, ``WORLD_SIZE``,
  ``LOCAL_RANK`` in the environment; NCCL on CUDA, gloo on CPU) or stays a single process;
  ``wrap_model`` adds DistributedDataParallel and torch.compile;
- ``barrier``, ``all_finite`` and ``mean_over_processes``: the collective operations the
  loop needs, which do nothing in a single process.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the run: ``rank`` of ``world_size`` processes, its GPU index
    on the machine (``local_rank``) and the device it computes on."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def main(self) -> bool:
        """Rank 0: the process that logs, evaluates and writes checkpoints."""
        return self.rank == 0


def resolve_device(pref: str) -> torch.device:
    """``auto``: CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if pref == "cuda" and not torch.cuda.is_available():
        raise ValueError("engine.device is cuda but no CUDA device is available")
    if pref == "auto":
        pref = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(pref)


def resolve_amp(amp: str, device: torch.device) -> str:
    """``auto`` -> ``bf16`` on CUDA, ``off`` on the CPU; other values as given."""
    if amp == "auto":
        return "bf16" if device.type == "cuda" else "off"
    return amp


def channels_last_enabled(setting: str, device: torch.device) -> bool:
    """``on``, ``off``, or ``auto`` = on for CUDA (faster convolutions with tensor cores)."""
    return setting == "on" or (setting == "auto" and device.type == "cuda")


def autocast_for(device: torch.device, amp: str):
    """The autocast context of ``amp`` in {"bf16", "fp16", "off"}; ``off`` is a null context."""
    if amp == "off":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def grad_scaler(device: torch.device, amp: str) -> torch.amp.GradScaler:
    """A GradScaler that scales the loss for fp16 only (elsewhere its calls pass through)."""
    return torch.amp.GradScaler(device.type, enabled=amp == "fp16")


def setup_distributed(device_pref: str) -> DistInfo:
    """Join the torchrun process group when launched by torchrun; else a single process.

    Under torchrun each process takes GPU ``LOCAL_RANK`` of its machine.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(device_pref)
    if world == 1:
        return DistInfo(0, 1, 0, device)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank, world, local, device)


def wrap_model(model: torch.nn.Module, info: DistInfo, compile_model: bool) -> torch.nn.Module:
    """The module the loop calls: ``model`` under DDP when there are several processes, then
    torch.compile when asked. Checkpoints keep saving the plain ``model``."""
    net = model
    if info.world_size > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[info.local_rank] if info.device.type == "cuda" else None)
    if compile_model:
        net = torch.compile(net)
    return net


def barrier(info: DistInfo) -> None:
    """Wait for every process (nothing to wait for in a single process)."""
    if info.world_size > 1:
        dist.barrier()


def all_finite(loss: torch.Tensor, info: DistInfo) -> bool:
    """Whether the loss is finite on every process, so that all of them stop together."""
    ok = torch.isfinite(loss.detach()).to(torch.float32)
    if info.world_size > 1:
        dist.all_reduce(ok, op=dist.ReduceOp.MIN)
    return bool(ok.item())


def mean_over_processes(values: dict[str, float], info: DistInfo) -> dict[str, float]:
    """Each value averaged over the processes (every process must call it, same keys)."""
    if info.world_size == 1 or not values:
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return {k: float(v) / info.world_size for k, v in zip(keys, t.tolist())}
