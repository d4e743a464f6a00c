"""Training losses: the pixel losses, and for GAN training relativistic-average GAN terms and
a VGG19 perceptual loss.

The VGG19 here is built by edgesr itself (the conv structure of torchvision's
``vgg19().features``) and never downloads anything. Its weights come from a local file only:
torchvision's ``vgg19-dcbb9e9d.pth`` state dict (``features.N.weight``/``features.N.bias``;
``classifier.*`` keys are ignored) or a ``.safetensors`` with the same keys. Without one it
uses fixed-seed random (Kaiming) weights: deep features of a randomly initialised net still
make a useful perceptual/texture loss, because much of what such a loss measures comes from
the network's structure rather than its training (Liu et al., "Generic Perceptual Loss for
Modeling Structured Output Dependencies", CVPR 2021). ImageNet weights remain the stronger
choice where they are available.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgesr.archs.vgg19_layers import VGG19_BLOCKS, VGG19_LAYERS
from edgesr.errors import ConfigError, ModelError

VGG19_ENV = "EDGESR_VGG19_WEIGHTS"
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def pixel_loss(name: str, sr: Tensor, hr: Tensor) -> Tensor:
    """The ``train.loss`` / ``gan.pixel_loss`` named ``name`` between ``sr`` and ``hr``."""
    if name == "l1":
        return F.l1_loss(sr, hr)
    if name == "mse":
        return F.mse_loss(sr, hr)
    if name == "charbonnier":
        return torch.sqrt((sr - hr) ** 2 + 1e-6).mean()
    raise ConfigError(f"unknown loss '{name}'; use l1, mse or charbonnier.")


def phase_loss(sr: Tensor, hr: Tensor, period: int) -> Tensor:
    """How much ``sr - hr`` repeats with the upsampler's period: mean |per-phase mean error|.

    A PixelShuffle-by-``period`` generator computes each output pixel with one of ``period``**2
    filter phases. Under perceptual and adversarial losses it finds a cheap way to add
    "texture": a fixed pattern that repeats every ``period`` pixels (the grid of GAN-trained
    compact nets). Averaged over a patch, the error of each phase (pixel position modulo
    ``period``) is near zero for a natural texture, but equals the pattern for a grid. This
    takes those ``period``**2 means per image and channel, removes their common mean (a global
    offset is the pixel loss's business) and returns the mean magnitude; (N, C, H, W) inputs,
    cropped to whole periods.
    """
    h, w = (n // period * period for n in sr.shape[-2:])
    e = (sr - hr)[..., :h, :w]
    n, c = e.shape[:2]
    phases = e.reshape(n, c, h // period, period, w // period, period).mean(dim=(2, 4))
    return (phases - phases.mean(dim=(2, 3), keepdim=True)).abs().mean()


def ragan_d_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Relativistic-average discriminator loss (ESRGAN, Wang et al. 2018).

    D is trained to find real data *more* realistic than the average fake, and fakes less
    realistic than the average real: the mean of BCE(real - mean(fake), 1) and
    BCE(fake - mean(real), 0). Works for any logits shape (per image, patch or pixel); the
    averages run over all elements. Pass ``fake_logits`` of detached fakes.
    """
    return 0.5 * (
        _bce(real_logits - fake_logits.mean(), True) + _bce(fake_logits - real_logits.mean(), False)
    )


def ragan_g_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Relativistic-average generator loss: :func:`ragan_d_loss` with the targets swapped.

    G gets gradients from both terms (real logits are compared with the mean of its fakes),
    unlike a standard GAN's G loss. ``real_logits`` may be detached; D is not trained here.
    """
    return 0.5 * (
        _bce(real_logits - fake_logits.mean(), False) + _bce(fake_logits - real_logits.mean(), True)
    )


def _bce(logits: Tensor, real: bool) -> Tensor:
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)


# --------------------------------------------------------------------------------------------
# Perceptual loss


def resolve_vgg19_weights(path: str | Path | None) -> Path | None:
    """The VGG19 weights file to use: ``path``, else ``$EDGESR_VGG19_WEIGHTS``, else None.

    A named file that does not exist is a ConfigError (nothing is ever downloaded).
    """
    origin = "gan.vgg19_weights"
    if path is None or str(path) == "":
        path, origin = os.environ.get(VGG19_ENV) or None, f"${VGG19_ENV}"
    if path is None:
        return None
    resolved = Path(path).expanduser()
    if not resolved.is_file():
        raise ConfigError(
            f"VGG19 weights {resolved} (from {origin}) do not exist. Point {origin} at a local "
            "copy of torchvision's vgg19-dcbb9e9d.pth (or a .safetensors with its "
            "features.N.weight/bias keys), or unset it to use the random-weight VGG19; "
            "edgesr never downloads weights."
        )
    return resolved


def load_vgg19_state(path: str | Path) -> dict[str, Tensor]:
    """Read a VGG19 state dict from a torchvision ``.pth`` (weights only) or ``.safetensors``."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load and safetensors raise many types for bad files
        raise ModelError(
            f"{path} is not a readable VGG19 state dict ({exc}); use torchvision's "
            "vgg19-dcbb9e9d.pth or a .safetensors with features.N.weight/bias keys."
        ) from exc
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ModelError(
            f"{path} does not hold a state dict of tensors; use torchvision's vgg19-dcbb9e9d.pth."
        )
    return dict(state)


class PerceptualLoss(nn.Module):
    """Weighted L1 distance between VGG19 features of an output and its target.

    Inputs are ``(N, C, H, W)`` in [0, 1], C = 3 (RGB) or 1 (Y, repeated to 3 channels),
    normalised with the ImageNet mean/std. The VGG19 is truncated after the deepest layer
    used, frozen (no parameter takes gradients) and always in eval mode; gradients flow to
    the first input only.

    Args:
        layers: names from :data:`VGG19_LAYERS`; ``conv*`` are pre-activation features.
        layer_weights: one weight per layer.
        weights: a local VGG19 state dict (see :func:`load_vgg19_state`); None for the
            fixed-seed random-weight network.
        seed: seed of the random weights.
    """

    def __init__(
        self,
        layers: Sequence[str] = ("conv1_2", "conv2_2", "conv3_4", "conv4_4", "conv5_4"),
        layer_weights: Sequence[float] = (0.1, 0.1, 1.0, 1.0, 1.0),
        weights: str | Path | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        unknown = [name for name in layers if name not in VGG19_LAYERS]
        if unknown or not layers or len(layer_weights) != len(layers):
            raise ConfigError(
                f"perceptual layers {list(layers)} with weights {list(layer_weights)}: need one "
                f"weight per layer and names from {', '.join(VGG19_LAYERS)}."
            )
        self.indices = [VGG19_LAYERS.index(name) for name in layers]
        self.layer_weights = [float(w) for w in layer_weights]
        self.features = _vgg19_features(max(self.indices) + 1)
        if weights is None:
            self._random_init(seed)
            self.source = f"random-vgg19 (seed {seed})"
        else:
            self._load(Path(weights))
            self.source = f"vgg19 {Path(weights).resolve()}"
        self.register_buffer(
            "mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    @property
    def random_weights(self) -> bool:
        return self.source.startswith("random")

    def train(self, mode: bool = True) -> PerceptualLoss:
        # A fixed feature extractor: a parent's .train() must not switch it.
        return super().train(False)

    def _random_init(self, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for layer in self.features:
                if isinstance(layer, nn.Conv2d):
                    # Kaiming (fan-in, ReLU gain) keeps the feature scale roughly constant with
                    # depth, so deep layers neither vanish nor dominate the loss.
                    nn.init.kaiming_normal_(layer.weight, nonlinearity="relu", generator=generator)
                    layer.bias.zero_()

    def _load(self, path: Path) -> None:
        state = load_vgg19_state(path)
        wanted = {f"features.{k}": v for k, v in self.features.state_dict().items()}
        missing = [k for k in wanted if k not in state]
        wrong = [
            f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})"
            for k, v in wanted.items()
            if k in state and state[k].shape != v.shape
        ]
        if missing or wrong:
            detail = f"missing {', '.join(missing[:6])}" if missing else ""
            detail += ("; " if missing and wrong else "") + (
                f"wrong shape {', '.join(wrong[:6])}" if wrong else ""
            )
            raise ModelError(
                f"{path} is not a VGG19 features state dict ({detail}); use torchvision's "
                "vgg19-dcbb9e9d.pth (keys features.N.weight/bias)."
            )
        self.features.load_state_dict(
            {k[len("features.") :]: state[k].float() for k in wanted}, strict=True
        )

    def _features(self, x: Tensor) -> list[Tensor]:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        elif x.shape[1] != 3:
            raise ValueError(f"perceptual loss needs 1 or 3 channels, got {x.shape[1]}")
        x = (x - self.mean) / self.std
        out: dict[int, Tensor] = {}
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.indices:
                out[i] = x
        return [out[i] for i in self.indices]

    def forward(self, x: Tensor, target: Tensor) -> Tensor:
        with torch.no_grad():
            target_feats = self._features(target)
        return sum(
            (
                w * F.l1_loss(f, t)
                for w, f, t in zip(self.layer_weights, self._features(x), target_feats, strict=True)
            ),
            x.new_zeros(()),
        )


def _vgg19_features(num_layers: int) -> nn.Sequential:
    """The first ``num_layers`` layers of VGG19 ``features``, indexed like torchvision's."""
    layers: list[nn.Module] = []
    in_ch = 3
    for channels, convs in VGG19_BLOCKS:
        for _ in range(convs):
            # Not in-place: a pre-activation conv output may be one of the returned features.
            layers += [nn.Conv2d(in_ch, channels, 3, padding=1, device="meta"), nn.ReLU()]
            in_ch = channels
        layers.append(nn.MaxPool2d(2, 2))
    # Built on the meta device and every weight set afterwards (random or loaded): no default
    # init work and no draw from the global RNG, so building the loss leaves seeding alone.
    return nn.Sequential(*layers[:num_layers]).to_empty(device="cpu")
