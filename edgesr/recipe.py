"""Typed recipes: YAML loaded once into frozen dataclasses.

A recipe names a net, its data and its training schedule (later stages add their own
sections). Loading is strict: an unknown or mistyped key fails with the valid names, values
are converted by the field's declared type (so ``--set train.lr=1e-3`` is a float), and the
result is immutable, so nothing down the stack can change it behind the caller's back.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import hashlib
import json
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from edgesr.errors import ConfigError

SCHEMA_VERSION = 1

TRAINING_SECTIONS = ("schema", "name", "description", "model", "data", "train", "gan")

# Keys that change how a run is carried out or recorded, not what it learns: they are left out
# of the recipe hash and may change when a run is resumed (train.steps may too).
BOOKKEEPING_KEYS = frozenset(
    {
        "model.weights",
        "train.val_every",
        "train.ckpt_every",
        "train.log_every",
        "train.keep_checkpoints",
        "train.threads",
        "gan.val_every",
        "gan.ckpt_every",
    }
)


@dataclass(frozen=True)
class ModelSpec:
    """The net: architecture, scale, colour convention and constructor keywords."""

    arch: str
    scale: int
    color: Literal["y", "rgb"] = "y"
    params: Mapping[str, Any] = field(default_factory=dict)
    # File name of the weights shipped in ``edgesr/weights/`` (None: none shipped yet).
    weights: str | None = None

    @property
    def num_channels(self) -> int:
        return 1 if self.color == "y" else 3


@dataclass(frozen=True)
class CameraDegradation:
    """Knobs of ``data.degradation: camera`` (see :mod:`edgesr.data.degradations`).

    A second-order pipeline: blur -> resize -> noise -> JPEG, then (with
    ``second_order_prob``) the same again, then the resize to the exact LR size with an
    optional sinc filter. Ranges are [min, max]; ``*_probs`` are relative weights.
    """

    # Blur kernel side in pixels; odd sizes in this range are drawn uniformly.
    kernel_size: tuple[int, ...] = (7, 21)
    # Weights of: iso, aniso, generalized_iso, generalized_aniso, plateau_iso, plateau_aniso.
    kernel_probs: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    # Gaussian sigma in HR pixels, first and second stage.
    blur_sigma: tuple[float, ...] = (0.2, 3.0)
    blur_sigma2: tuple[float, ...] = (0.2, 1.5)
    # Shape exponents of the generalized Gaussian and plateau kernels.
    generalized_beta: tuple[float, ...] = (0.5, 4.0)
    plateau_beta: tuple[float, ...] = (1.0, 2.0)
    # Chance that a blur kernel is a 2-D sinc (ringing/overshoot) instead.
    sinc_prob: float = 0.1
    # Sinc cutoff as a fraction of pi (1.0: Nyquist, a near pass-through).
    sinc_cutoff: tuple[float, ...] = (0.33, 1.0)
    second_blur_prob: float = 0.8
    # Weights of up / down / keep, and the scale range; stage 2 is relative to the LR size.
    resize_probs: tuple[float, ...] = (0.2, 0.7, 0.1)
    resize_range: tuple[float, ...] = (0.15, 1.5)
    resize_probs2: tuple[float, ...] = (0.3, 0.4, 0.3)
    resize_range2: tuple[float, ...] = (0.3, 1.2)
    # Weights of the cv2 interpolations area / bilinear / bicubic (every resize, final too).
    resize_mode_probs: tuple[float, ...] = (1.0, 1.0, 1.0)
    # Weights of the noise models: Gaussian, Poisson, Poisson-Gaussian (sensor).
    noise_probs: tuple[float, ...] = (0.4, 0.2, 0.4)
    # Gaussian noise sigma in 8-bit levels (uniform).
    gaussian_sigma: tuple[float, ...] = (1.0, 30.0)
    # Poisson noise: variance a*x for x in [0, 1] (a drawn log-uniformly).
    poisson_a: tuple[float, ...] = (1e-4, 1e-2)
    # Sensor noise: variance a*x + b (both log-uniform), in linear light if sensor_linear.
    sensor_a: tuple[float, ...] = (1e-4, 5e-3)
    sensor_b: tuple[float, ...] = (1e-7, 3e-5)
    sensor_linear: bool = True
    # Chance that the noise is the same in all channels (luma noise) instead of per channel.
    gray_noise_prob: float = 0.4
    jpeg_quality: tuple[int, ...] = (30, 95)
    second_order_prob: float = 0.5
    final_sinc_prob: float = 0.8


@dataclass(frozen=True)
class DataSpec:
    """Where training/validation images come from and how LR/HR patches are made."""

    # "embedded" (needs no download) or a folder: DIV2K layout or any folder of images.
    train: str = "embedded"
    # "embedded", a folder, or null for no validation.
    val: str | None = "embedded"
    # "bicubic": MATLAB bicubic LR (the benchmark protocol); "camera": random realistic
    # blur/resize/noise/JPEG made afresh for every patch, with the knobs in ``camera``.
    degradation: Literal["bicubic", "camera"] = "bicubic"
    camera: CameraDegradation = field(default_factory=CameraDegradation)
    # LR patch side in pixels; the HR patch is scale times larger.
    lr_patch: int = 24
    batch_size: int = 32
    augment: bool = True
    # Extra copies of every training image downscaled by these factors (bicubic), e.g. FSRCNN's
    # [0.9, 0.8, 0.7, 0.6]; bicubic degradation only.
    scale_augment: tuple[float, ...] = ()
    # Images with a side below this many HR pixels are skipped (with a warning).
    min_size: int = 0


@dataclass(frozen=True)
class TrainSpec:
    """Optimisation schedule; the learning rate is a pure function of the step (resumable)."""

    steps: int = 20000
    lr: float = 1e-3
    lr_min: float = 1e-6
    schedule: Literal["cosine", "multistep", "constant"] = "cosine"
    milestones: tuple[int, ...] = ()
    gamma: float = 0.5
    warmup_steps: int = 0
    weight_decay: float = 0.0
    loss: Literal["l1", "mse", "charbonnier"] = "l1"
    # Switch to MSE for the last N steps (all, in a shorter run): L1 trains faster, an MSE
    # finish buys PSNR.
    mse_finetune_steps: int = 0
    grad_clip: float | None = None
    val_every: int = 1000
    ckpt_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 50
    seed: int = 0
    # Intra-op threads for torch (None: all cores).
    threads: int | None = None


@dataclass(frozen=True)
class CompressSpec:
    """``edgesr compress``: prune -> distil -> INT8, each stage measured."""

    # Fraction of hidden channels removed per layer (0 skips pruning and distillation).
    prune_ratio: float = 0.5
    # "activation" (mean |activation| x consumer weight, on training patches) ranks channels of
    # trained nets far better than weight norms (ESPCN x4 at 50 %, before KD: 29.3 vs 7.5 dB).
    prune_criterion: Literal["l1", "l2", "activation"] = "activation"
    # Per-width overrides of prune_ratio, keyed by the net's width hyper-parameter (ESPCN:
    # num_feat, num_feat2); e.g. {num_feat2: 0.75} prunes the second layer harder.
    prune_layer_ratios: Mapping[str, float] = field(default_factory=dict)
    # Knowledge distillation of the pruned net against the FP32 teacher.
    kd_steps: int = 2000
    # Pure distillation with MSE at lr 2e-3 measured best for the 50 %-pruned ESPCN x4 (tuning
    # split of BSD200 + General100, 2000 steps, Δ vs FP32): -0.366 dB, against -0.418 with
    # alpha 0.5 / L1 / lr 5e-4, -0.376 with L1, -0.412 with alpha 0.5, -0.492 at lr 4e-3.
    kd_lr: float = 2e-3
    # Weight of the teacher-output loss; the rest goes to the HR target.
    kd_alpha: float = 1.0
    kd_loss: Literal["l1", "mse"] = "mse"
    int8: bool = True
    # Cross-layer channel equalization before INT8 (edgesr.compress.equalize): "auto" keeps it
    # only if it lowers the PTQ drop on the validation images (it does for ESPCN, not for
    # AnchorNet/FSRCNN).
    equalize: Literal["auto", "always", "never"] = "auto"
    # QAT: pure distillation (alpha 1) with MSE at lr 3e-4 measured best on ESPCN x4
    # (Set5, 1500 steps: -0.081 dB vs -0.126 dB with alpha 0.5, L1, lr 1e-4).
    qat_steps: int = 2000
    # QAT steps of the TensorRT-layout models (int8-qdq); None: qat_steps. Their signed
    # activations leave a ReLU output 7 bits, and QAT keeps recovering that for longer. ESPCN x4
    # on the tuning split (BSD200 + General100, Δ vs FP32, two sampler seeds): int8-qdq -0.077 /
    # -0.087 dB after 2000 steps, -0.046 / -0.055 after 6000; int8-ort gained nothing from
    # 6000 (-0.102 after 2000; -0.125, and -0.093 at lr 1e-3), so it keeps qat_steps.
    qdq_qat_steps: int | None = 6000
    qat_lr: float = 3e-4
    qat_alpha: float = 1.0
    # Mixed precision: keep the convs INT8 hurts most in float until the PTQ Y-PSNR drop on
    # the validation images is within this many dB (None: every conv INT8).
    int8_max_drop_db: float | None = None
    # Weight bits of the ORT-CPU INT8 model. 7: no u8 x s8 pair can saturate ORT's x86 kernels
    # without VNNI, so every CPU computes the same (QAT wins the bit back). 8: finer, but only
    # for models that will run on VNNI/AMX x86 or ARM alone; on AVX2-only x86 they clip.
    ort_weight_bits: Literal[7, 8] = 7
    # The first conv of the ORT-CPU model, which sees the image and costs most of its INT8 loss
    # (ESPCN x4, tuning photos, after QAT: float first conv -0.04 dB, all 7-bit -0.13):
    # "7bit-input": the image on a 7-bit grid (u8 values 0-127) x 8-bit weights, exact on every
    # CPU, same speed (-0.10); "7bit-weights": the 8-bit image x 7-bit weights; "float": kept
    # float (ORT then runs it unfused: 1.65x instead of 2.4x FP32 speed).
    ort_first_conv: Literal["7bit-input", "7bit-weights", "float"] = "7bit-input"
    # Also make "int8-ort-float-first" from the unpruned net: int8-ort with its first conv in
    # float, the front's quality point. ESPCN x4, one run each, Δ vs FP32 on Set5 / Set14 / line
    # art / held-out photos: -0.042 / -0.025 / -0.019 / -0.017 dB at 1.63x FP32 speed, against
    # int8-ort's -0.122 / -0.063 / -0.038 / -0.056 at 2.50x (1 thread).
    ort_float_first_model: bool = True
    # INT8 models to make: "onnxruntime-cpu" (int8-ort) and/or "tensorrt" (int8-qdq); each
    # costs its own PTQ + QAT.
    int8_targets: tuple[Literal["onnxruntime-cpu", "tensorrt"], ...] = (
        "onnxruntime-cpu",
        "tensorrt",
    )
    # The TensorRT-layout model keeps its first conv in float: int8 with zero point 0 would cut
    # the [0, 1] input to 7 bits. False quantizes it too (an all-INT8 engine).
    trt_float_first_conv: bool = True
    # Which nets get INT8 models: "unpruned" (the FP32 net: the smallest loss) and/or "pruned"
    # (the distilled net: the fastest). Both by default, so one run shows the speed/quality front.
    int8_models: tuple[Literal["unpruned", "pruned"], ...] = ("unpruned", "pruned")
    # Named calibration set (see calibration/) or a folder of images.
    calib: str = "embedded"
    calib_images: int = 32
    # Images the stage table is measured on: "embedded" (validation split) or a folder.
    eval: str = "embedded"
    # ORT CPU latency is measured at this LR frame size (H, W) with this many threads.
    latency_size: tuple[int, ...] = (270, 480)
    latency_threads: int = 2
    latency_runs: int = 20
    batch_size: int = 16

    @property
    def prunes(self) -> bool:
        """Whether compress makes a pruned (and distilled) net."""
        return self.prune_ratio > 0 or any(r > 0 for r in self.prune_layer_ratios.values())

    def qat_steps_for(self, target: str) -> int:
        """QAT steps of an INT8 model for ``target`` ("onnxruntime-cpu" or "tensorrt")."""
        if target == "tensorrt" and self.qdq_qat_steps is not None:
            return self.qdq_qat_steps
        return self.qat_steps


@dataclass(frozen=True)
class GanSpec:
    """``gan``: after the pixel-loss run (``train.*``), adversarial fine-tuning of the same net.

    G loss = pixel_weight * pixel + perceptual_weight * VGG19 features (L1)
    + adversarial_weight * relativistic-average GAN + phase_weight * phase consistency;
    D loss = relativistic-average GAN. The
    exported net is an EMA of G. Absent (null) in a recipe: plain pixel-loss training.
    """

    # Adversarial steps (phase 2); the pixel pre-training runs train.steps first.
    steps: int = 5000
    g_lr: float = 1e-4
    d_lr: float = 1e-4
    # Both learning rates follow a cosine from their start value down to lr_min.
    lr_min: float = 1e-6
    betas: tuple[float, ...] = (0.9, 0.99)
    pixel_loss: Literal["l1", "mse", "charbonnier"] = "l1"
    pixel_weight: float = 1.0
    perceptual_weight: float = 1.0
    # VGG19 layers compared (pre-activation convs, as in ESRGAN) and their weights.
    perceptual_layers: tuple[str, ...] = ("conv1_2", "conv2_2", "conv3_4", "conv4_4", "conv5_4")
    perceptual_layer_weights: tuple[float, ...] = (0.1, 0.1, 1.0, 1.0, 1.0)
    adversarial_weight: float = 0.1
    # The phase-consistency loss (edgesr.train.losses.phase_loss): without it the perceptual
    # and adversarial terms each grow a fixed grid at the upsampling period (srgan_lite_x4:
    # 12 -> 25 dB periodic_grid_db on the embedded photos in 100 steps; 10 keeps it at 12).
    phase_weight: float = 10.0
    # "unet" (per-pixel logits) or "vgg" (per-8x8-patch logits, cheaper); see edgesr.archs.
    discriminator: str = "unet"
    disc_params: Mapping[str, Any] = field(default_factory=dict)
    ema_decay: float = 0.999
    # A local torchvision VGG19 state dict (vgg19-dcbb9e9d.pth or .safetensors); null: the
    # EDGESR_VGG19_WEIGHTS environment variable, else fixed-seed random weights (never
    # downloaded).
    vgg19_weights: str | None = None
    # Patches per GAN step (null: data.batch_size); the perceptual and discriminator nets
    # make a GAN step ~20-50x the cost of a pixel step, so CPU schedules use smaller batches.
    batch_size: int | None = None
    val_every: int = 500
    ckpt_every: int = 100


@dataclass(frozen=True)
class Recipe:
    schema: int
    name: str
    model: ModelSpec
    description: str = ""
    data: DataSpec = field(default_factory=DataSpec)
    train: TrainSpec = field(default_factory=TrainSpec)
    compress: CompressSpec = field(default_factory=CompressSpec)
    gan: GanSpec | None = None
    # Where the recipe was read from (not part of the YAML).
    source: str | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain, YAML/JSON-ready form (without ``source``)."""
        out = _to_plain(self)
        out.pop("source", None)
        # Unused default camera knobs are left out (loading restores them), so bicubic recipes
        # keep their hash (shipped weights carry it) and runs saved before them still resume.
        if self.data.degradation == "bicubic" and self.data.camera == CameraDegradation():
            out["data"].pop("camera", None)
        # Likewise no scale augmentation (a later knob), and an absent gan section (plain
        # pixel-loss training) is not written as null.
        if not self.data.scale_augment:
            out["data"].pop("scale_augment", None)
        if self.gan is None:
            out.pop("gan", None)
        return out

    def training_dict(self) -> dict[str, Any]:
        """The sections the trained weights depend on (later stages have their own sections)."""
        return {k: v for k, v in self.to_dict().items() if k in TRAINING_SECTIONS}

    def hash(self) -> str:
        """A short content hash of what the recipe trains, written into artifacts' metadata.

        Only ``TRAINING_SECTIONS`` count, less the ``BOOKKEEPING_KEYS`` (e.g. ``model.weights``,
        ``train.threads``): weights stay matched to their recipe when compression settings change.
        """
        content = self.training_dict()
        for key in BOOKKEEPING_KEYS:
            section, name = key.split(".")
            if isinstance(content.get(section), dict):
                content[section].pop(name, None)
        blob = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def replace(self, overrides: Iterable[str]) -> Recipe:
        """A new recipe with ``a.b=c`` overrides applied and validated again."""
        raw = self.to_dict()
        for item in overrides:
            _apply_override(raw, item)
        return _from_raw(raw, origin=self.source or self.name)


# --------------------------------------------------------------------------------------------
# Lookup


def _packaged_dir() -> Path:
    """``recipes/`` of a source checkout, or its copy installed as ``edgesr/_recipes``."""
    package = Path(__file__).resolve().parent
    installed = package / "_recipes"
    return installed if installed.is_dir() else package.parent / "recipes"


def available_recipes() -> list[str]:
    """Names of the recipes shipped with edgesr."""
    return sorted(p.stem for p in _packaged_dir().glob("*.yaml"))


def resolve_recipe_path(name_or_path: str | Path) -> Path:
    """A shipped recipe's name (``espcn_x4``) or a path to the user's own YAML file."""
    text = str(name_or_path)
    candidate = Path(text).expanduser()
    looks_like_path = candidate.suffix in (".yaml", ".yml") or "/" in text or "\\" in text
    if looks_like_path:
        if not candidate.is_file():
            raise ConfigError(
                f"recipe file {candidate} does not exist; pass an existing YAML file or one of: {', '.join(available_recipes())}"
            )
        return candidate
    packaged = _packaged_dir() / f"{text}.yaml"
    if packaged.is_file():
        return packaged
    names = available_recipes()
    close = difflib.get_close_matches(text, names, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ConfigError(
        f"unknown recipe '{text}'.{hint} Shipped recipes: {', '.join(names)} "
        "(or pass a path to your own .yaml; `edgesr recipes` lists them)."
    )


def read_yaml_file(path: Path) -> Any:
    """The parsed YAML of ``path``; a ConfigError naming the file if it is unreadable or invalid.

    Recipes, budgets and calibration sets are all read this way.
    """
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc}); fix the syntax.") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc}).") from exc


def load_recipe(name_or_path: str | Path, overrides: Iterable[str] = ()) -> Recipe:
    """Load a recipe by name or path, apply ``a.b=c`` overrides, validate, freeze."""
    path = resolve_recipe_path(name_or_path)
    raw = read_yaml_file(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a recipe must be a YAML mapping, got {type(raw).__name__}.")
    for item in overrides:
        _apply_override(raw, item)
    return _from_raw(raw, origin=str(path))


def _from_raw(raw: dict[str, Any], *, origin: str) -> Recipe:
    schema = raw.get("schema")
    if schema != SCHEMA_VERSION:
        raise ConfigError(
            f"{origin}: 'schema: {schema}' is not supported; this edgesr reads recipe schema "
            f"{SCHEMA_VERSION}. Add 'schema: {SCHEMA_VERSION}' at the top (see recipes/ for examples)."
        )
    if "source" in raw:
        raise ConfigError(f"{origin}: 'source' is set by edgesr, not by the recipe; remove it.")
    recipe = _build(Recipe, {**raw, "source": origin}, where="", origin=origin)
    _check_semantics(recipe, origin)
    return recipe


def _check_semantics(recipe: Recipe, origin: str) -> None:
    from edgesr.archs import arch_params  # light; deferred to keep import order simple

    valid = arch_params(recipe.model.arch)  # raises ConfigError for an unknown arch
    unknown = sorted(set(recipe.model.params) - set(valid) - {"scale", "num_channels"})
    if unknown:
        listing = ", ".join(
            f"{k}={v!r}" for k, v in valid.items() if k not in ("scale", "num_channels")
        )
        raise ConfigError(
            f"{origin}: unknown key(s) {', '.join(f'model.params.{k}' for k in unknown)} for arch "
            f"'{recipe.model.arch}'; valid params (defaults): {listing}."
        )
    for key in ("scale", "num_channels"):
        if key in recipe.model.params:
            raise ConfigError(
                f"{origin}: set model.{'scale' if key == 'scale' else 'color'} instead of model.params.{key}."
            )
    checks = [
        (recipe.model.scale in (2, 3, 4, 8), "model.scale must be 2, 3, 4 or 8"),
        (recipe.data.lr_patch >= 4, "data.lr_patch must be at least 4"),
        (recipe.data.batch_size >= 1, "data.batch_size must be at least 1"),
        (
            all(0.0 < f < 1.0 for f in recipe.data.scale_augment),
            "data.scale_augment factors must be in (0, 1)",
        ),
        (
            not recipe.data.scale_augment or recipe.data.degradation == "bicubic",
            "data.scale_augment works with data.degradation 'bicubic' only",
        ),
        (recipe.train.steps >= 1, "train.steps must be at least 1"),
        (recipe.train.lr > 0, "train.lr must be positive"),
        (recipe.train.ckpt_every >= 1, "train.ckpt_every must be at least 1"),
        (recipe.train.val_every >= 1, "train.val_every must be at least 1"),
        (recipe.train.keep_checkpoints >= 1, "train.keep_checkpoints must be at least 1"),
        (recipe.train.mse_finetune_steps >= 0, "train.mse_finetune_steps must not be negative"),
        (
            recipe.train.schedule != "multistep" or bool(recipe.train.milestones),
            "train.schedule 'multistep' needs train.milestones",
        ),
        (
            0.0 <= recipe.compress.prune_ratio < 1.0,
            "compress.prune_ratio must be in [0, 1) (0 disables pruning)",
        ),
        (
            all(0.0 <= r < 1.0 for r in recipe.compress.prune_layer_ratios.values()),
            "compress.prune_layer_ratios values must be in [0, 1)",
        ),
        (0.0 <= recipe.compress.kd_alpha <= 1.0, "compress.kd_alpha must be in [0, 1]"),
        (
            not recipe.compress.int8 or bool(recipe.compress.int8_targets),
            "compress.int8_targets must name onnxruntime-cpu and/or tensorrt (or set compress.int8: false)",
        ),
        (
            not recipe.compress.int8 or bool(recipe.compress.int8_models),
            "compress.int8_models must name unpruned and/or pruned (or set compress.int8: false)",
        ),
        (0.0 <= recipe.compress.qat_alpha <= 1.0, "compress.qat_alpha must be in [0, 1]"),
        (
            recipe.compress.kd_steps >= 0
            and recipe.compress.qat_steps >= 0
            and (recipe.compress.qdq_qat_steps or 0) >= 0,
            "compress.kd_steps, qat_steps and qdq_qat_steps must not be negative",
        ),
        (recipe.compress.calib_images >= 1, "compress.calib_images must be at least 1"),
        (
            recipe.compress.int8_max_drop_db is None or recipe.compress.int8_max_drop_db >= 0,
            "compress.int8_max_drop_db must be >= 0 dB, or null for all-INT8",
        ),
        (
            len(recipe.compress.latency_size) == 2 and min(recipe.compress.latency_size) >= 8,
            "compress.latency_size must be [height, width], each at least 8",
        ),
        (
            recipe.compress.latency_threads >= 1 and recipe.compress.latency_runs >= 1,
            "compress.latency_threads and compress.latency_runs must be at least 1",
        ),
        (recipe.compress.batch_size >= 1, "compress.batch_size must be at least 1"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(f"{origin}: {message}.")
    problems = camera_problems(recipe.data.camera)
    if problems:
        raise ConfigError(f"{origin}: {'; '.join(problems)}.")
    if recipe.gan is not None:
        problems = gan_problems(recipe.gan)
        if problems:
            raise ConfigError(f"{origin}: {'; '.join(problems)}.")


def camera_problems(cam: CameraDegradation, prefix: str = "data.camera") -> list[str]:
    """What is wrong with camera-degradation knobs, one message per key (empty: all fine)."""
    out: list[str] = []

    def span(name: str, lo: float, hi: float, *, open_lo: bool = False) -> None:
        v = getattr(cam, name)
        low = f"> {lo}" if open_lo else f">= {lo}"
        rule = f"[min, max] with min {low}, max <= {hi} and min <= max"
        if len(v) != 2:
            out.append(f"{prefix}.{name} must be {rule}, got {list(v)}")
        elif v[0] > v[1]:
            out.append(f"{prefix}.{name} has min > max ({list(v)}); swap them to {list(v[::-1])}")
        elif (v[0] <= lo if open_lo else v[0] < lo) or v[1] > hi:
            out.append(f"{prefix}.{name} must be {rule}, got {list(v)}")

    def weights(name: str, n: int, what: str) -> None:
        v = getattr(cam, name)
        if len(v) != n or min(v) < 0 or sum(v) <= 0:
            out.append(
                f"{prefix}.{name} must be {n} non-negative weights ({what}) with a positive "
                f"sum, got {list(v)}"
            )

    def prob(name: str) -> None:
        if not 0.0 <= getattr(cam, name) <= 1.0:
            out.append(f"{prefix}.{name} is a probability: use a value in [0, 1]")

    inf = float("inf")
    span("kernel_size", 1, 51)
    k = cam.kernel_size
    if len(k) == 2 and k[0] == k[1] and k[0] % 2 == 0:
        out.append(f"{prefix}.kernel_size holds no odd size; widen it, e.g. to [7, 21]")
    span("blur_sigma", 0, inf, open_lo=True)
    span("blur_sigma2", 0, inf, open_lo=True)
    span("generalized_beta", 0, inf, open_lo=True)
    span("plateau_beta", 0, inf, open_lo=True)
    span("sinc_cutoff", 0, 1, open_lo=True)
    span("resize_range", 0, inf, open_lo=True)
    span("resize_range2", 0, inf, open_lo=True)
    span("gaussian_sigma", 0, 255)
    span("poisson_a", 0, 1, open_lo=True)
    span("sensor_a", 0, 1, open_lo=True)
    span("sensor_b", 0, 1, open_lo=True)
    span("jpeg_quality", 1, 100)
    weights(
        "kernel_probs",
        6,
        "iso, aniso, generalized_iso, generalized_aniso, plateau_iso, plateau_aniso",
    )
    weights("resize_probs", 3, "up, down, keep")
    weights("resize_probs2", 3, "up, down, keep")
    weights("resize_mode_probs", 3, "area, bilinear, bicubic")
    weights("noise_probs", 3, "gaussian, poisson, sensor")
    for name in (
        "sinc_prob",
        "second_blur_prob",
        "gray_noise_prob",
        "second_order_prob",
        "final_sinc_prob",
    ):
        prob(name)
    return out


def gan_problems(gan: GanSpec) -> list[str]:
    """What is wrong with a ``gan`` section, one message per key (empty: all fine)."""
    from edgesr.archs import discriminator_params  # deferred like arch_params above
    from edgesr.archs.vgg19_layers import VGG19_LAYERS

    out = [
        f"gan.{name} must be at least 1"
        for name in ("steps", "val_every", "ckpt_every")
        if getattr(gan, name) < 1
    ]
    out += [f"gan.{name} must be positive" for name in ("g_lr", "d_lr") if getattr(gan, name) <= 0]
    if gan.batch_size is not None and gan.batch_size < 1:
        out.append("gan.batch_size must be at least 1, or null for data.batch_size")
    if gan.lr_min < 0:
        out.append("gan.lr_min must not be negative")
    if len(gan.betas) != 2 or not all(0.0 <= b < 1.0 for b in gan.betas):
        out.append(f"gan.betas must be [beta1, beta2], each in [0, 1), got {list(gan.betas)}")
    weights = ("pixel_weight", "perceptual_weight", "adversarial_weight")
    out += [f"gan.{name} must not be negative" for name in weights if getattr(gan, name) < 0]
    if not 0.0 < gan.ema_decay < 1.0:
        out.append(f"gan.ema_decay must be in (0, 1), e.g. 0.999; got {gan.ema_decay}")
    unknown_layers = [name for name in gan.perceptual_layers if name not in VGG19_LAYERS]
    if unknown_layers:
        out.append(
            f"gan.perceptual_layers has unknown VGG19 layer(s) {', '.join(unknown_layers)}; "
            f"valid: {', '.join(VGG19_LAYERS)}"
        )
    if gan.perceptual_weight > 0 and not gan.perceptual_layers:
        out.append("gan.perceptual_layers is empty; name layers or set gan.perceptual_weight 0")
    if len(gan.perceptual_layer_weights) != len(gan.perceptual_layers):
        out.append(
            "gan.perceptual_layer_weights needs one weight per gan.perceptual_layers entry "
            f"({len(gan.perceptual_layers)}), got {len(gan.perceptual_layer_weights)}"
        )
    if any(w < 0 for w in gan.perceptual_layer_weights):
        out.append("gan.perceptual_layer_weights must not be negative")
    try:
        valid = discriminator_params(gan.discriminator)
    except ConfigError as exc:
        out.append(f"gan.discriminator: {exc}")
    else:
        unknown = sorted(set(gan.disc_params) - set(valid) - {"num_channels"})
        if unknown:
            listing = ", ".join(f"{k}={v!r}" for k, v in valid.items() if k != "num_channels")
            out.append(
                f"unknown key(s) {', '.join(f'gan.disc_params.{k}' for k in unknown)} for "
                f"discriminator '{gan.discriminator}'; valid params (defaults): {listing}"
            )
        if "num_channels" in gan.disc_params:
            out.append("gan.disc_params.num_channels follows model.color; remove it")
    return out


# --------------------------------------------------------------------------------------------
# Typed construction


def _build(cls: type, raw: Any, *, where: str, origin: str) -> Any:
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"{origin}: '{where or 'the recipe'}' must be a mapping of keys, got {raw!r}."
        )
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in raw if k not in fields]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(str(key), list(fields), n=1)
        hint = f" (did you mean '{_join(where, close[0])}'?)" if close else ""
        valid = ", ".join(k for k in fields if k != "source")
        raise ConfigError(
            f"{origin}: unknown key '{_join(where, str(key))}'{hint}; valid keys"
            f"{' under ' + repr(where) if where else ''}: {valid}."
        )
    kwargs = {}
    for name, f in fields.items():
        if name in raw:
            kwargs[name] = _convert(raw[name], hints[name], where=_join(where, name), origin=origin)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{origin}: missing required key '{_join(where, name)}'.")
    return cls(**kwargs)


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _convert(value: Any, hint: Any, *, where: str, origin: str) -> Any:
    def fail(expected: str) -> ConfigError:
        return ConfigError(f"{origin}: '{where}' must be {expected}, got {value!r}.")

    origin_type = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin_type in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        candidates = [a for a in args if a is not type(None)]
        for arg in candidates:
            try:
                return _convert(value, arg, where=where, origin=origin)
            except ConfigError:
                # An optional section's own error names the bad key inside it.
                if len(candidates) == 1 and dataclasses.is_dataclass(arg):
                    raise
                continue
        raise fail(" or ".join(_describe(a) for a in args))
    if origin_type is Literal:
        if value not in args:
            raise fail("one of " + ", ".join(repr(a) for a in args))
        return value
    if origin_type is tuple:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise fail("a list")
        item = args[0]
        return tuple(
            _convert(v, item, where=f"{where}[{i}]", origin=origin) for i, v in enumerate(value)
        )
    if origin_type in (Mapping, dict) or hint in (Mapping, dict):
        if not isinstance(value, Mapping):
            raise fail("a mapping")
        if args:  # typed values, e.g. Mapping[str, float]; Mapping[str, Any] passes through
            value = {
                k: _convert(v, args[1], where=f"{where}.{k}", origin=origin)
                for k, v in value.items()
            }
        # Frozen view of a private copy: the recipe stays immutable all the way down.
        return types.MappingProxyType(copy.deepcopy(dict(value)))
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _build(hint, value, where=where, origin=origin)
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise fail("true or false")
    if hint is int:
        if isinstance(value, bool):
            raise fail("an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.replace("_", ""))
            except ValueError:
                pass
        raise fail("an integer")
    if hint is float:
        if isinstance(value, bool):
            raise fail("a number")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            # YAML 1.1 reads "1e-3" as a string; the field's type says it is a number.
            try:
                return float(value)
            except ValueError:
                pass
        raise fail("a number")
    if hint is str:
        if isinstance(value, str):
            return value
        raise fail("a string")
    raise ConfigError(f"{origin}: '{where}' has an unsupported type {hint!r} (edgesr bug).")


def _describe(hint: Any) -> str:
    if hint is type(None):
        return "null"
    return getattr(hint, "__name__", str(hint))


def _apply_override(raw: dict[str, Any], item: str) -> None:
    """Apply one ``a.b.c=value`` to a private raw dict; the value is parsed as YAML."""
    if "=" not in item:
        raise ConfigError(
            f"override '{item}' must look like key.path=value, e.g. train.steps=2000."
        )
    key, _, text = item.partition("=")
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"override '{item}' has an empty key; use e.g. train.steps=2000.")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override '{item}': the value is not valid YAML ({exc}).") from exc
    node = raw
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = {}
            node[part] = child
        if not isinstance(child, dict):
            raise ConfigError(
                f"override '{item}': '{'.'.join(parts[: i + 1])}' is a value, not a section."
            )
        node = child
    node[parts[-1]] = value


def _to_plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: _to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {k: _to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_plain(v) for v in obj]
    return obj


def dump_recipe(recipe: Recipe) -> str:
    """The resolved recipe as YAML, for run directories and model cards."""
    return yaml.safe_dump(recipe.to_dict(), sort_keys=False)
