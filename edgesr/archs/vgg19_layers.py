"""VGG19's ``features`` layout and layer names, kept free of torch.

The recipe layer checks ``gan.perceptual_layers`` against these names without importing the
training code; :mod:`edgesr.train.losses` builds its VGG19 from the same blocks.
"""

from __future__ import annotations

# (channels, convs) per block of VGG19 (configuration "E" of Simonyan & Zisserman).
VGG19_BLOCKS: tuple[tuple[int, int], ...] = ((64, 2), (128, 2), (256, 4), (512, 4), (512, 4))


def _layer_names() -> tuple[str, ...]:
    names: list[str] = []
    for b, (_, convs) in enumerate(VGG19_BLOCKS, start=1):
        for i in range(1, convs + 1):
            names += [f"conv{b}_{i}", f"relu{b}_{i}"]
        names.append(f"pool{b}")
    return tuple(names)


#: Layer names of VGG19 ``features``; a name's position is its torchvision index
#: (conv1_1 = features.0, conv5_4 = features.34).
VGG19_LAYERS: tuple[str, ...] = _layer_names()
