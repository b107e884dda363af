"""evaluation.shifts against torchvision's definition (written here in torch) and PIL itself."""

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from evaluation import shifts

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _torchvision_blur(images: np.ndarray, sigma: float, k: int = 5) -> np.ndarray:
    """torchvision.transforms.functional.gaussian_blur on a uint8 tensor, from its definition."""
    half = (k - 1) * 0.5
    x = torch.linspace(-half, half, steps=k)
    pdf = torch.exp(-0.5 * (x / sigma).pow(2))
    k1 = pdf / pdf.sum()
    k2 = torch.mm(k1[:, None], k1[None, :])
    t = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    c = t.shape[1]
    t = F.pad(t, [k // 2] * 4, mode="reflect")
    out = F.conv2d(t, k2.expand(c, 1, k, k), groups=c)
    return torch.round(out).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


@pytest.mark.parametrize("sigma", shifts.BLUR_SIGMAS)
def test_blur_matches_torchvision(sigma):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (4, 28, 28, 3), dtype=np.uint8)
    ours = shifts.gaussian_blur(images, sigma)
    ref = _torchvision_blur(images, sigma)
    assert ours.dtype == np.uint8 and ours.shape == images.shape
    diff = np.abs(ours.astype(int) - ref)
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3


def test_blur_kernel_table_and_border():
    # the reference note's 1-D kernel at sigma 0.9, and reflection (not zero) padding at the border
    k = shifts.torchvision_gaussian_kernel(0.9)
    np.testing.assert_allclose(k.sum(1), [0.0377, 0.2399, 0.4448, 0.2399, 0.0377], atol=1e-4)
    flat = np.full((1, 28, 28, 3), 200, np.uint8)
    np.testing.assert_array_equal(shifts.gaussian_blur(flat, 0.9), flat)


def test_blur_accepts_tensor_and_hwc():
    import tensorflow as tf

    img = np.random.default_rng(1).integers(0, 256, (28, 30, 3), dtype=np.uint8)
    out = shifts.gaussian_blur(tf.constant(img), 0.5)
    assert isinstance(out, tf.Tensor) and out.shape == img.shape
    np.testing.assert_array_equal(out.numpy(), _torchvision_blur(img[None], 0.5)[0])


@pytest.mark.parametrize("factor", [0.6, 0.8, 0.9, 1.1, 1.2, 1.4])
def test_brightness_matches_pil_enhance(factor):
    img = np.arange(256, dtype=np.uint8).reshape(16, 16).repeat(3).reshape(16, 16, 3)
    ref = np.asarray(ImageEnhance.Brightness(Image.fromarray(img)).enhance(factor))
    np.testing.assert_array_equal(shifts.brightness(img[None], factor)[0], ref)


def test_brightness_factor_sets_and_errors():
    assert shifts.brightness_factors("pets") == (0.6, 0.8, 1.2, 1.4)
    assert shifts.brightness_factors(None) == (0.8, 0.9, 1.1, 1.2)
    with pytest.raises(ValueError, match="allowed"):
        shifts.brightness_factors("cifar")
    with pytest.raises(ValueError, match="uint8"):
        shifts.brightness(np.zeros((1, 4, 4, 3), np.float32), 1.1)
