"""Parameter and MAC counts of SR nets.

MAC convention (used everywhere in edgesr: budgets, reports, the model zoo):
multiply-accumulates of Conv2d, ConvTranspose2d and Linear layers for one forward pass at the
given input size, one MAC per weight x input product. Biases, activations (incl. PReLU),
PixelShuffle, adds and other element-wise ops are not counted. Grouped convs count
``in/groups`` products per output value. Zero-padded border taps of a conv are counted
(the usual convention, so MACs per LR pixel do not depend on the image size).
ConvTranspose2d counts ``in * out/groups * k_h * k_w`` MACs per *input* pixel, i.e. every
scattered product, including those that land in the cropped padding.
"""

from __future__ import annotations

import torch
from torch import nn


def count_params(model: nn.Module) -> int:
    """Number of parameters (trainable or not; buffers excluded)."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_shape: tuple[int, ...] | None = None) -> int:
    """MACs of one forward pass on an input of ``input_shape`` (module docstring: convention).

    ``input_shape`` defaults to ``(1, model.num_channels, 32, 32)``. The count is for the whole
    batch. A training-time net with re-parameterisable blocks is counted as it stands; call
    ``model.fuse()`` first for the deployment cost.
    """
    if input_shape is None:
        input_shape = (1, model.num_channels, 32, 32)
    total = 0

    def conv_hook(module: nn.Conv2d, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        k_h, k_w = module.kernel_size
        total += output.numel() * (module.in_channels // module.groups) * k_h * k_w

    def deconv_hook(module: nn.ConvTranspose2d, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        k_h, k_w = module.kernel_size
        total += inputs[0].numel() * (module.out_channels // module.groups) * k_h * k_w

    def linear_hook(module: nn.Linear, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        total += output.numel() * module.in_features

    hooks = []
    for module in model.modules():
        # ConvTranspose2d is not a Conv2d subclass, but check it first to be explicit.
        if isinstance(module, nn.ConvTranspose2d):
            hooks.append(module.register_forward_hook(deconv_hook))
        elif isinstance(module, nn.Conv2d):
            hooks.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.Linear):
            hooks.append(module.register_forward_hook(linear_hook))

    ref = next(model.parameters(), None)
    x = torch.zeros(
        input_shape,
        device=ref.device if ref is not None else None,
        dtype=ref.dtype if ref is not None else None,
    )
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(x)
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return total


def complexity(
    model: nn.Module, lr_size: tuple[int, int] = (32, 32), *, deploy: bool = True
) -> dict[str, float | int]:
    """Params and MACs for one LR image of ``lr_size`` (H, W), single image, C = num_channels.

    With ``deploy`` (default) a net that has ``fuse()`` is measured fused, i.e. as it will be
    exported; pass ``deploy=False`` for the training-time cost.
    Returns ``{"params", "macs", "macs_per_lr_pixel", "gmacs"}``.
    """
    if deploy and hasattr(model, "fuse"):
        model = model.fuse()
    h, w = lr_size
    macs = count_macs(model, (1, model.num_channels, h, w))
    return {
        "params": count_params(model),
        "macs": macs,
        "macs_per_lr_pixel": macs / (h * w),
        "gmacs": macs / 1e9,
    }
