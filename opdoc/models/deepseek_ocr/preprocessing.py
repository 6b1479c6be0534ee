"""Reference image preprocessing of DeepSeek-OCR: the pixel transform of every view and the tile-grid choice.

Written from what the vendor's ``infer()`` does to a page (``modeling_deepseekocr.py`` of
deepseek-ai/DeepSeek-OCR), not from its code. The vendor runs these steps on the host CPU with PIL
and torchvision before anything reaches the GPU; here the pixel transform is plain torch, so the
checker can count it, and the grid choice is plain Python, so the build can tabulate it without PIL.

A view's pixels enter as the uint8 array a PIL image holds, (height, width, channels); torchvision's
``ToTensor`` turns them into floats in [0, 1], channels first, and ``Normalize`` maps each channel to
``(x - mean) / std``. ``BasicImageTransform`` does the same aten work in the same order.
"""

from __future__ import annotations

from abc import ABC
from collections.abc import Sequence

import torch
from torch import Tensor

TILE = 640  # side in pixels of one local tile (infer's image_size in crop mode)


# ------------------------------------------------------------------------------ pixel transform


def pixels_to_unit_floats(pixels: Tensor) -> Tensor:
    """uint8 (H, W, C) -> (C, H, W) in the default float dtype, each value divided by 255 (ToTensor)."""
    channels_first = pixels.permute(2, 0, 1).contiguous()  # the one copy that reorders the pixels
    return channels_first.to(torch.get_default_dtype()).div(255)


def normalize_channels(x: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """(x - mean[c]) / std[c] for each channel c, on a copy (Normalize with inplace=False)."""
    mean_t = torch.as_tensor(mean, dtype=x.dtype, device=x.device)
    std_t = torch.as_tensor(std, dtype=x.dtype, device=x.device)
    # torchvision refuses a zero deviation on every call, so the comparison runs per view.
    if (std_t == 0).any():
        raise ValueError(f"std has a zero entry {tuple(std)}: normalising would divide by zero")
    out = x.clone()
    return out.sub_(mean_t.view(-1, 1, 1)).div_(std_t.view(-1, 1, 1))


class BaseTransform(ABC):
    """What DeepSeek-OCR expects of an image transform: call it on an image, get a tensor.

    Nothing is abstract: the base does no work, its random-state hook is a no-op for deterministic
    transforms, and only ``default_shape`` must be given by a subclass that is asked for it.
    """

    def set_rng(self, *args, **kwargs) -> None:
        """Deterministic transforms have no random state to set."""

    def __call__(self, *args, **kwargs) -> Tensor | None:
        """A subclass transforms here; the base returns None."""
        return None

    @property
    def default_shape(self):
        raise NotImplementedError("a transform that has a fixed output shape says so here")


class BasicImageTransform(BaseTransform):
    """Pixels to unit floats, then per-channel (x - mean) / std; infer() passes mean = std = 0.5 per channel.

    A missing mean counts as zeros and a missing std as ones (the vendor's ``normalize_transform``);
    without either, or with ``normalize=False``, only the conversion runs.
    """

    def __init__(self, mean: Sequence[float] | None = (0.5, 0.5, 0.5),
                 std: Sequence[float] | None = (0.5, 0.5, 0.5), normalize: bool = True):
        self.mean = mean
        self.std = std
        self.normalize = normalize and not (mean is None and std is None)
        channels = len(mean if mean is not None else std) if self.normalize else 0
        self._mean = tuple(mean) if mean is not None else (0.0,) * channels
        self._std = tuple(std) if std is not None else (1.0,) * channels

    def __call__(self, pixels: Tensor) -> Tensor:
        """pixels: uint8 (H_img, W_img, C_in), as a PIL image holds them -> float (C_in, H_img, W_img)."""
        x = pixels_to_unit_floats(pixels)
        if self.normalize:
            x = normalize_channels(x, self._mean, self._std)
        return x


# ------------------------------------------------------------------------------ tile grid


def candidate_grids(min_num: int = 2, max_num: int = 9) -> list[tuple[int, int]]:
    """Every (c_w, c_h) with min_num <= c_w·c_h <= max_num, fewest tiles first."""
    grids = [(c_w, c_h) for c_w in range(1, max_num + 1) for c_h in range(1, max_num + 1)
             if min_num <= c_w * c_h <= max_num]
    return sorted(grids, key=lambda grid: (grid[0] * grid[1], grid))


def tile_grid(width: int, height: int, min_num: int = 2, max_num: int = 9, tile: int = TILE) -> tuple[int, int]:
    """The grid dynamic_preprocess cuts a width x height image into: c_w tiles across, c_h down.

    The grid whose shape c_w / c_h is nearest the image's width / height wins. Grids exactly as near
    (the same shape at several sizes, 2x2 and 3x3 for a square; or two shapes either side of the
    image's) are visited fewest tiles first, and a later one replaces the choice only when the image
    has more than half the pixels of that grid resized, 0.5 · tile² · c_w · c_h: a small image stays
    on few tiles, a large one gets more.

    Candidates with the same tile count are never tied with each other at the nearest distance (a
    ratio-1 grid always lies between c_w / c_h and c_h / c_w), so their order does not matter.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width} x {height}")
    aspect = width / height
    best, best_distance = (1, 1), float("inf")
    for c_w, c_h in candidate_grids(min_num, max_num):
        distance = abs(aspect - c_w / c_h)
        if distance < best_distance:
            best, best_distance = (c_w, c_h), distance
        elif distance == best_distance and width * height > 0.5 * tile * tile * c_w * c_h:
            best = (c_w, c_h)
    return best


def dynamic_preprocess(image, min_num: int = 2, max_num: int = 9, image_size: int = TILE,
                       use_thumbnail: bool = False):
    """Cut a PIL image into c_w x c_h tiles of image_size px: resize to (image_size·c_w, image_size·c_h), crop.

    Returns the tiles row by row and (c_w, c_h); with use_thumbnail, a whole-image square resized to
    image_size follows them when there is more than one tile.
    """
    width, height = image.size
    c_w, c_h = tile_grid(width, height, min_num, max_num, image_size)
    resized = image.resize((image_size * c_w, image_size * c_h))
    tiles = [resized.crop((col * image_size, row * image_size, (col + 1) * image_size, (row + 1) * image_size))
             for row in range(c_h) for col in range(c_w)]
    if use_thumbnail and len(tiles) != 1:
        tiles.append(image.resize((image_size, image_size)))
    return tiles, (c_w, c_h)


def views_of(width: int, height: int, tile: int = TILE) -> tuple[int, int]:
    """(c_w, c_h) as infer() uses it in crop mode: 1 x 1 (no tiles) when neither side exceeds one tile."""
    if width <= tile and height <= tile:
        return 1, 1
    return tile_grid(width, height, tile=tile)
