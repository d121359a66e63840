"""How fast a training step runs: numeric precision, memory format, the dilated depthwise fast path,
torch.compile. None of these changes what is computed beyond floating-point rounding (bf16 / fp16
round more; benchmarks/train_speed.py measures both the speed and the metric spread).

- ``train.precision``: ``fp32`` | ``bf16`` | ``fp16`` | ``auto``. bf16 runs the forward pass and
  the losses under autocast; fp16 also scales the loss with a dynamic ``GradScaler`` (fp16 gradients
  underflow otherwise). ``auto`` is bf16 on CUDA (fp16 where the GPU has no bf16) and on CPUs with
  AMX, else fp32: emulated bf16 is slower than fp32, and so was ``avx512_bf16`` without AMX.
- ``train.channels_last``: NHWC activations; oneDNN's depthwise kernels are several times faster
  in NHWC. Unset (null) = on for CPU and CUDA.
- dilated depthwise convolutions (MobileNet's last stages at output stride 16/8, the ASPP
  branches): PyTorch's CPU backward of a *dilated* depthwise conv is 5-15x slower than its forward.
  :class:`DilatedDepthwiseConv2d` computes the same gradients from two fast kernels (see
  :func:`_dw_backward`), and a conv whose dilation exceeds the feature map as the per-channel scale
  it is; parameters and state_dict keys are unchanged. CPU only: cuDNN is fine.
- ``train.compile``: ``torch.compile`` the model (first steps pay the compilation).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgemtl.errors import EdgeMTLError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def cpu_bf16_pays_off() -> bool:
    """AMX (matrix tiles with bf16) only. ``avx512_bf16`` alone (bf16 dot products in vector
    registers) trained slower in bf16 than in fp32 on an AMD EPYC with it: 0.74x images/s
    single-task, 0.84x hard sharing, 0.82x ASTMT, MTI-Net 1.06x (benchmarks/results/
    train_speed_epyc_vnni)."""
    from edgemtl.profile.cpu import cpu_features

    return "amx_bf16" in cpu_features()


def resolve_device(device: str) -> torch.device:
    """``train.device``: ``auto`` is CUDA where there is a GPU, else the CPU."""
    return torch.device(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)


def resolve_precision(precision: str, device: torch.device) -> str:
    if precision not in PRECISIONS:
        from edgemtl.errors import unknown_choice

        raise unknown_choice("train.precision", precision, PRECISIONS)
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_bf16_pays_off() else "fp32"


@dataclass
class Amp:
    """Autocast + (fp16 only) loss scaling for one training run."""

    precision: str  # resolved: fp32 | bf16 | fp16
    device_type: str
    scaler: torch.amp.GradScaler | None = None

    @classmethod
    def create(cls, precision: str, device: torch.device, balancer, name: str = "") -> Amp:
        p = resolve_precision(precision, device)
        scaler = None
        if p == "fp16":
            if getattr(balancer, "kind", "loss") != "loss" or type(balancer).backward is not _loss_backward():
                raise EdgeMTLError(
                    f"train.precision=fp16 needs loss scaling, which the '{name}' balancer (it reads "
                    "per-task "
                    "gradients) does not support: use train.precision=bf16 (no scaling needed) or fp32"
                )
            scaler = torch.amp.GradScaler(device.type)
        return cls(p, device.type, scaler)

    def autocast(self):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=_DTYPES[self.precision])

    def scale(self, loss: Tensor) -> Tensor:
        return self.scaler.scale(loss) if self.scaler is not None else loss

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """optimizer.step(), skipped by the scaler when fp16 gradients overflowed."""
        if self.scaler is None:
            optimizer.step()
        else:
            self.scaler.step(optimizer)

    def update(self) -> None:
        if self.scaler is not None:
            self.scaler.update()

    def state_dict(self) -> dict:
        return self.scaler.state_dict() if self.scaler is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)


def _loss_backward():
    from edgemtl.balancers.base import Balancer

    return Balancer.backward


def use_channels_last(setting, device: torch.device) -> bool:
    if setting is None:
        return device.type in ("cpu", "cuda")
    return bool(setting)


# ------------------------------------------------------------------ dilated depthwise fast path
class _DilatedDepthwise(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx,
        x: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        padding: tuple[int, int],
        dilation: tuple[int, int],
    ) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.padding, ctx.dilation, ctx.has_bias = padding, dilation, bias is not None
        return F.conv2d(x, weight, bias, 1, padding, dilation, x.shape[1])

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        return (
            *_dw_backward(grad, x, weight, ctx.padding, ctx.dilation, ctx.needs_input_grad[:2]),
            grad.sum((0, 2, 3)) if ctx.has_bias and ctx.needs_input_grad[2] else None,
            None,
            None,
        )


def _dw_backward(
    grad: Tensor,
    x: Tensor,
    weight: Tensor,
    padding: tuple[int, int],
    dilation: tuple[int, int],
    need: tuple[bool, bool],
) -> tuple[Tensor | None, Tensor | None]:
    """Gradients of a stride-1, "same"-padded depthwise conv.

    Input: the transposed conv of a stride-1 conv with symmetric padding p = d (k - 1) / 2 is the
    same conv with the kernel rotated by 180 degrees, a fast forward kernel. Weight: tap (i, j) of
    channel c is sum_{n,h,w} grad[n,c,h,w] * xpad[n,c,h + i d, w + j d]: k*k shifted products.
    """
    (ph, pw), (dh, dw) = padding, dilation
    grad_x = grad_w = None
    if need[0]:
        grad_x = F.conv2d(grad, weight.flip(2, 3), None, 1, padding, dilation, x.shape[1])
    if need[1]:
        kh, kw = weight.shape[-2:]
        h, w = grad.shape[-2:]
        xp = F.pad(x, (pw, pw, ph, ph))
        taps = [
            (grad * xp[:, :, i * dh : i * dh + h, j * dw : j * dw + w]).sum((0, 2, 3))
            for i in range(kh)
            for j in range(kw)
        ]
        grad_w = torch.stack(taps, 1).view_as(weight).to(weight.dtype)
    return grad_x, grad_w


class DilatedDepthwiseConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` (same parameters and keys) whose backward takes the fast path above."""

    def forward(self, x: Tensor) -> Tensor:
        if x.device.type != "cpu" or torch.is_autocast_enabled("cpu"):
            return super().forward(x)  # the fast path is an fp32 CPU kernel choice
        (dh, dw), (h, w) = self.dilation, x.shape[-2:]
        if dh >= h and dw >= w:
            # Every tap but the centre reads the zero padding (ASPP rates 12 and 18 on an 8x8 map):
            # the conv is a per-channel scale, without padding the map to (h + 2d) x (w + 2d).
            kh, kw = self.kernel_size
            y = x * self.weight[:, 0, kh // 2, kw // 2].view(1, -1, 1, 1)
            return y + self.bias.view(1, -1, 1, 1) if self.bias is not None else y
        return _DilatedDepthwise.apply(x, self.weight, self.bias, self.padding, self.dilation)


def _eligible(m: nn.Module) -> bool:
    if type(m) is not nn.Conv2d or m.padding_mode != "zeros" or not isinstance(m.padding, tuple):
        return False
    depthwise = m.groups == m.in_channels == m.out_channels and m.groups > 1
    same = all(2 * p == d * (k - 1) for p, d, k in zip(m.padding, m.dilation, m.kernel_size))
    odd = all(k % 2 for k in m.kernel_size)  # a centre tap (the shortcut) and symmetric "same" padding
    return depthwise and odd and m.stride == (1, 1) and m.dilation != (1, 1) and same


def fast_dilated_depthwise(model: nn.Module) -> int:
    """Switch every eligible dilated depthwise conv of ``model`` to the fast backward; returns how many."""
    n = 0
    for m in model.modules():
        if _eligible(m):
            m.__class__ = DilatedDepthwiseConv2d
            n += 1
    return n


def plain_convs(model: nn.Module) -> None:
    """Undo :func:`fast_dilated_depthwise` (before export or pickling the module)."""
    for m in model.modules():
        if type(m) is DilatedDepthwiseConv2d:
            m.__class__ = nn.Conv2d
