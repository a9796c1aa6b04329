"""The one image reader: every PNG flavour reads as the 8-bit RGB picture it shows."""

import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from conceptebm.datasets.images import ImageError, read_image


def _png(path, arr: np.ndarray, color_type: int, depth: int):
    """A PNG written by hand (Pillow cannot write 16-bit RGB): 0 grey, 2 RGB, 4 LA, 6 RGBA."""
    h, w = arr.shape[:2]
    dtype = ">u2" if depth == 16 else "u1"
    raw = b"".join(b"\x00" + arr[i].astype(dtype).tobytes() for i in range(h))

    def chunk(tag, data):
        return (struct.pack(">I", len(data)) + tag + data
                + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return path


@pytest.fixture
def picture():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)  # (H, W, 3)


def _rgb8(tmp_path, arr, name="ref.png"):
    Image.fromarray(arr, "RGB").save(tmp_path / name)
    return read_image(tmp_path / name)


def test_rgb8_is_the_pixels_over_255(tmp_path, picture):
    x = _rgb8(tmp_path, picture)
    assert x.shape == (3, 6, 7) and x.dtype == torch.float32
    assert torch.equal(x, torch.from_numpy(picture).permute(2, 0, 1).float() / 255)


def test_grayscale_8_and_16_bit_read_as_the_grey_rgb_picture(tmp_path, picture):
    grey = picture[..., 0]  # (H, W)
    ref = _rgb8(tmp_path, np.repeat(grey[..., None], 3, axis=2))
    Image.fromarray(grey, "L").save(tmp_path / "g8.png")
    assert torch.equal(read_image(tmp_path / "g8.png"), ref)
    # 16-bit grey: the same picture scaled by 257 (255 -> 65535); used to read as all white
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as im:
        assert im.mode.startswith("I")  # the case convert("RGB") clips
    assert torch.equal(read_image(tmp_path / "g16.png"), ref)
    assert torch.equal(read_image(_png(tmp_path / "g16h.png", grey.astype(np.uint16) * 257,
                                       0, 16)), ref)


def test_bilevel_image(tmp_path):
    bits = np.array([[0, 255], [255, 0]], np.uint8)
    Image.fromarray(bits).convert("1").save(tmp_path / "b.png")
    assert torch.equal(read_image(tmp_path / "b.png"),
                       _rgb8(tmp_path, np.repeat(bits[..., None], 3, axis=2)))


def test_rgb16_reads_as_the_8_bit_picture(tmp_path, picture):
    ref = _rgb8(tmp_path, picture)
    path = _png(tmp_path / "rgb16.png", picture.astype(np.uint16) * 257, 2, 16)
    assert torch.equal(read_image(path), ref)


def test_palette_image(tmp_path, picture):
    few = (picture // 64) * 64  # at most 64 colours: a palette holds them exactly
    ref = _rgb8(tmp_path, few)
    Image.fromarray(few, "RGB").quantize(colors=256, method=Image.Quantize.MAXCOVERAGE).save(
        tmp_path / "p.png")
    with Image.open(tmp_path / "p.png") as im:
        assert im.mode == "P"
    assert torch.equal(read_image(tmp_path / "p.png"), ref)


def test_opaque_alpha_changes_nothing(tmp_path, picture):
    ref = _rgb8(tmp_path, picture)
    rgba = np.concatenate([picture, np.full((6, 7, 1), 255, np.uint8)], axis=2)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    assert torch.equal(read_image(tmp_path / "rgba.png"), ref)
    path = _png(tmp_path / "rgba16.png", rgba.astype(np.uint16) * 257, 6, 16)
    assert torch.equal(read_image(path), ref)
    grey_alpha = np.stack([picture[..., 0], np.full((6, 7), 255, np.uint8)], axis=2)
    Image.fromarray(grey_alpha, "LA").save(tmp_path / "la.png")
    assert torch.equal(read_image(tmp_path / "la.png"),
                       _rgb8(tmp_path, np.repeat(picture[..., :1], 3, axis=2), "g.png"))


def test_transparency_is_composited_on_white(tmp_path, picture):
    alpha = np.random.default_rng(1).integers(0, 256, (6, 7, 1), dtype=np.uint8)
    rgba = np.concatenate([picture, alpha], axis=2)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    a = alpha / 255.0
    on_white = np.round(picture * a + 255 * (1 - a)).astype(np.uint8)  # what a viewer shows
    x, ref = read_image(tmp_path / "rgba.png"), _rgb8(tmp_path, on_white)
    assert (x - ref).abs().max() <= 0.5 / 255 + 1e-6  # the reference is rounded to 8 bits
    clear = np.zeros((2, 2, 4), np.uint8)  # fully transparent black reads as white
    Image.fromarray(clear, "RGBA").save(tmp_path / "clear.png")
    assert torch.equal(read_image(tmp_path / "clear.png"), torch.ones(3, 2, 2))


@pytest.mark.parametrize("make, match", [
    (lambda d: d / "missing.png", "image not found: .*missing.png.*check the path"),
    (lambda d: d, "is a folder; give image files"),
    (lambda d: (d / "notes.png").write_text("hello") and d / "notes.png",
     "cannot read image .*notes.png.*re-save it as an 8-bit RGB PNG"),
])
def test_errors_name_the_file_and_the_fix(tmp_path, make, match):
    with pytest.raises(ImageError, match=match):
        read_image(make(tmp_path))
    assert issubclass(ImageError, ValueError)
