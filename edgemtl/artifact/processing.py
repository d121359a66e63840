"""Pre- and post-processing around an exported graph (numpy + OpenCV; what the metadata documents)."""

from __future__ import annotations

import numpy as np

from edgemtl.errors import EdgeMTLError


def check_image(image: object) -> np.ndarray:
    """An RGB uint8 HxWx3 array, or an EdgeMTLError saying what is wrong and how to fix it."""
    if not isinstance(image, np.ndarray):
        raise EdgeMTLError(f"image must be a numpy uint8 HxWx3 RGB array (got {type(image).__name__})")
    if image.dtype != np.uint8:
        hint = (
            " (float images in [0,1]: (image * 255).round().astype(np.uint8))"
            if image.dtype.kind == "f"
            else ""
        )
        raise EdgeMTLError(f"image dtype must be uint8 (got {image.dtype}){hint}")
    if image.ndim == 2:
        raise EdgeMTLError(
            f"image is grayscale {list(image.shape)}: pass HxWx3 RGB, e.g. np.repeat(image[..., None], 3, 2)"
        )
    if image.ndim != 3 or image.shape[2] not in (3,):
        hint = " (RGBA: pass image[..., :3])" if image.ndim == 3 and image.shape[2] == 4 else ""
        raise EdgeMTLError(f"image must have shape HxWx3 (RGB), got {list(image.shape)}{hint}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise EdgeMTLError(f"image is empty: shape {list(image.shape)}")
    return image


def resize(a: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Same interpolation rule as edgemtl.data.transforms.Resize (evaluation): area when shrinking."""
    import cv2

    h, w = int(hw[0]), int(hw[1])
    if a.shape[:2] == (h, w):
        return a
    flag = cv2.INTER_AREA if (h < a.shape[0] and w < a.shape[1]) else cv2.INTER_LINEAR
    out = cv2.resize(a, (w, h), interpolation=flag)
    return out[..., None] if a.ndim == 3 and out.ndim == 2 else out


def preprocess(image: np.ndarray, size: tuple[int, int], allow_resize: bool = True) -> np.ndarray:
    """uint8 HxWx3 RGB -> float32 [1, 3, H, W] in [0, 1] (mean/std are inside the graph)."""
    image = check_image(image)
    if image.shape[:2] != tuple(size):
        if not allow_resize:
            raise EdgeMTLError(
                f"image is {image.shape[0]}x{image.shape[1]} but the model input is {size[0]}x{size[1]}: "
                "resize it, or call predict(..., resize=True)"
            )
        image = resize(image, size)
    x = image.astype(np.float32) / 255.0
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def resize_output(raw: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """[1, C, h, w] -> [1, C, H, W] with bilinear interpolation (before decoding, so class maps are
    the argmax of interpolated logits and normals are renormalised after interpolation)."""
    import cv2

    if raw.shape[2:] == tuple(hw):
        return raw
    chw = raw[0].transpose(1, 2, 0)
    out = cv2.resize(np.ascontiguousarray(chw), (int(hw[1]), int(hw[0])), interpolation=cv2.INTER_LINEAR)
    if out.ndim == 2:
        out = out[..., None]
    return np.ascontiguousarray(out.transpose(2, 0, 1)[None])
