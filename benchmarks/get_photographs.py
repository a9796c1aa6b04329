"""Rebuild a fresh photographs test set: real images (photographs, textures, grey scientific
and medical images) that hold no rendered scene of the kind the models know.

    python benchmarks/get_photographs.py --out /work/photos_test \
        --manifest benchmarks/results/photographs_test_manifest.json
    python benchmarks/get_photographs.py --set 2 --out /work/photos_test2 \
        --manifest benchmarks/results/photographs_test2_manifest.json
    python benchmarks/photographs.py --photos /work/photos_test --json ...   # once, later

``--set 1`` (the default) is the first fresh set (``SOURCES``); ``--set 2`` a second one
(``SOURCES_2``) that shares no package with set 1, nor with scikit-image's sample data or
matplotlib's and scikit-learn's pictures.

Every image comes from a Debian package (``apt-get download``, ``dpkg -x``) or a PyPI wheel
(``pip download --no-deps``) by the fixed rule written beside its source in ``SOURCES``: files
in name order, a cap of K keeps every k-th file (k = ceil(n / K)) starting with the first.
Nothing is picked by eye and no model reads the images here. Not used: scikit-image's sample
data (the spent test set), matplotlib's and scikit-learn's pictures (validation data).

Each image is written as an RGB PNG named ``SOURCE__originalname.png``: grey -> three equal
channels; more than 8 bits (DICOM, NIfTI, FITS) -> windowed to its 1st-99th percentile; transparency
composited onto white; EXIF orientation applied; longest side at most 512 px (PIL's Lanczos
downscale). Within a source, an image whose converted pixels equal an earlier one's is dropped.

The manifest (``--manifest``) lists each image's sha256 (of the PNG file), size and whether it
is grey (three equal channels), and each source's package, version and rule.
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import hashlib
import io
import json
import math
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

MAX_SIDE = 512
TILE = 256  # GIMP patterns are small seamless tiles: each is tiled to TILE x TILE
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
# wheels are data here: none is imported by this process (pydicom runs in a child process)
PIP_TARGET = ["--only-binary=:all:", "--python-version", "3.10",
              "--platform", "manylinux2014_x86_64"]


def capped(paths, cap):
    """Every k-th path in name order, k = ceil(n / cap), starting with the first."""
    paths = sorted(paths)
    if cap is None or len(paths) <= cap:
        return paths
    return paths[::math.ceil(len(paths) / cap)]


def images_in(folder, suffixes=IMAGE_SUFFIXES):
    return sorted(p for p in Path(folder).iterdir()
                  if p.is_file() and p.suffix.lower() in suffixes)


# ---- one collector per source: root -> [(original name, PIL image or numpy array)] -----------

def mate(root):
    return [(p.name, Image.open(p)) for p in images_in(root / "usr/share/backgrounds/mate/nature")]


def ukui(root):
    return [(p.name, Image.open(p)) for p in images_in(root / "usr/share/backgrounds")]


def lomiri(root):
    return [(p.name, Image.open(p)) for p in images_in(root / "usr/share/backgrounds")]


def plasma(root):
    out = []
    for folder in sorted((root / "usr/share/wallpapers").iterdir()):
        files = images_in(folder / "contents/images")
        if files:
            sizes = [Image.open(p).size for p in files]
            best = max(range(len(files)), key=lambda i: (sizes[i][0] * sizes[i][1], files[i].name))
            out.append((folder.name, Image.open(files[best])))
    return out


def gnome(root):
    folder = root / "usr/share/backgrounds/gnome"
    return [(p.name, Image.open(p)) for p in sorted(folder.glob("*-l.webp"))]


OPENCV_SKIP = re.compile(r"^(left|right)\d\d\.jpg$|^Blender_")


def opencv(root):
    out = []
    for p in images_in(root / "usr/share/doc/opencv-doc/examples/data", (".jpg", ".png")):
        if OPENCV_SKIP.search(p.name):
            continue
        im = Image.open(p)
        if p.suffix == ".jpg" or im.mode == "L":
            out.append((p.name, im))
    return out


def stellarium(root):
    files = images_in(root / "usr/share/stellarium/nebulae/default", (".png",))
    return [(p.name, Image.open(p)) for p in capped(files, 24)]


ITK_SLICES = ("BrainMidSagittalSlice", "BrainProtonDensitySlice", "BrainT1Slice", "FatMRISlice",
              "VisibleWomanEyeSlice", "VisibleWomanHeadSlice")


def itk(root):
    folder = root / "usr/share/doc/insighttoolkit5-examples/examples/Data"
    return [(n + ".png", Image.open(folder / (n + ".png"))) for n in ITK_SLICES]


def read_gimp_pattern(path):
    """A GIMP .pat file: big-endian header (size, version, width, height, bytes per pixel,
    b"GPAT", name) followed by raw pixels, 1-4 bytes each (grey, grey+alpha, RGB, RGBA)."""
    data = path.read_bytes()
    header, _, w, h, depth, magic = struct.unpack(">IIIII4s", data[:24])
    if magic != b"GPAT":
        raise ValueError(f"{path}: not a GIMP pattern")
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[depth]
    tile = Image.frombytes(mode, (w, h), data[header:header + w * h * depth])
    out = Image.new(mode, (TILE, TILE))
    for y in range(0, TILE, h):
        for x in range(0, TILE, w):
            out.paste(tile, (x, y))
    return out


def gimp(root):
    base = root / "usr/share/gimp/2.0"
    pats = [p for p in (base / "patterns").rglob("*.pat")
            if p.relative_to(base / "patterns").parts[0] != "Legacy"]
    out = [(str(p.relative_to(base / "patterns").with_suffix("")), read_gimp_pattern(p))
           for p in capped(pats, 22)]
    out += [(p.name, Image.open(p)) for p in sorted((base / "scripts/images").glob("texture*.jpg"))]
    return out


def mypaint(root):
    files = sorted((root / "usr/share/mypaint/backgrounds").rglob("*.png"))
    return [(p.name, Image.open(p)) for p in capped(files, 9)]


# Run in a child process whose PYTHONPATH is the unpacked pydicom wheel (pure Python): writes
# one .npy per usable test file. The test files include deliberately broken ones: skipped.
DICOM_READER = """
import sys, pathlib, numpy as np, pydicom
from pydicom.uid import UncompressedTransferSyntaxes
src, dst = map(pathlib.Path, sys.argv[1:])
for p in sorted(src.glob("*.dcm")):
    try:
        ds = pydicom.dcmread(p)
        if ("PixelData" not in ds
                or ds.file_meta.get("TransferSyntaxUID") not in UncompressedTransferSyntaxes
                or not str(ds.get("PhotometricInterpretation", "")).startswith("MONOCHROME")
                or int(ds.get("NumberOfFrames", 1) or 1) != 1
                or min(ds.Rows, ds.Columns) < 64 or ds.get("Modality") in ("SEG", "RTDOSE")):
            continue
        a = ds.pixel_array.astype(np.float64)
    except Exception:
        continue
    np.save(dst / (p.name + ".npy"), -a if ds.PhotometricInterpretation == "MONOCHROME1" else a)
"""


def pydicom_images(root):
    arrays = root.parent / "dicom_arrays"
    arrays.mkdir()
    run([sys.executable, "-c", DICOM_READER, str(root / "pydicom/data/test_files"), str(arrays)],
        root.parent, env={**os.environ, "PYTHONPATH": str(root)})
    return [(p.name[:-len(".npy")], np.load(p)) for p in sorted(arrays.glob("*.npy"))]


def pywt_images(root):
    return [(n + ".npz", np.load(root / f"pywt/data/{n}.npz")["data"]) for n in ("aero", "ascent")]


def scipy_images(root):
    raw = bz2.decompress((root / "scipy/misc/face.dat").read_bytes())
    return [("face.dat", np.frombuffer(raw, dtype=np.uint8).reshape(768, 1024, 3))]


def mahotas_images(root):
    folder = root / "mahotas/demos/data"
    return [(p.name, Image.open(p)) for p in images_in(folder) if p.name != "lena.jpg"]


# (source, "deb" or "pip", package, version, kind, rule, collector). Debian's versions are the
# ones this set was made from; apt-get fetches the current one and a different one is reported.
SOURCES = [
    ("mate", "deb", "mate-backgrounds", "1.26.0-1", "photo",
     "every .jpg/.png in usr/share/backgrounds/mate/nature", mate),
    ("ukui", "deb", "ukui-wallpapers", "20.04.3-1.1", "photo and artwork",
     "every .jpg/.png in usr/share/backgrounds", ukui),
    ("lomiri", "deb", "lomiri-wallpapers-20.04", "20.04.0-2", "photo and artwork",
     "every .jpg in usr/share/backgrounds", lomiri),
    ("plasma", "deb", "plasma-workspace-wallpapers", "4:5.27.5-2", "photo and artwork",
     "for each folder of usr/share/wallpapers, the image in contents/images with the most "
     "pixels (the others are the same picture at other sizes)", plasma),
    ("gnome", "deb", "gnome-backgrounds", "43.1-1", "artwork",
     "every *-l.webp in usr/share/backgrounds/gnome (the light variant of each raster design; "
     "*-d.webp are dark recolourings of the same designs; SVGs skipped)", gnome),
    ("opencv", "deb", "opencv-doc", "4.6.0+dfsg-12", "photo, some grey",
     "every .jpg and every single-channel (mode L) .png in "
     "usr/share/doc/opencv-doc/examples/data, except the chessboard calibration series "
     "left01..right14.jpg and the Blender_* renders", opencv),
    ("stellarium", "deb", "stellarium-data", "0.22.2-1", "photo (deep-sky)",
     "every .png in usr/share/stellarium/nebulae/default, capped at 24 (every k-th)",
     stellarium),
    ("itk", "deb", "insighttoolkit5-examples", "5.2.1-5+deb12u1", "grey medical",
     "the original medical slices of examples/Data: " + ", ".join(ITK_SLICES)
     + " (.png; the shifted, rotated, bordered and resampled copies and the synthetic test "
     "patterns skipped)", itk),
    ("gimp", "deb", "gimp-data", "2.10.34-1+deb12u10", "texture",
     f"every .pat under usr/share/gimp/2.0/patterns outside Legacy/ (drawn patterns), capped "
     f"at 22 (every k-th), each tiled to {TILE}x{TILE}; and every texture*.jpg in "
     "usr/share/gimp/2.0/scripts/images", gimp),
    ("mypaint", "deb", "mypaint-data-extras", "2.0.1-9", "texture (paper, canvas)",
     "every .png under usr/share/mypaint/backgrounds, capped at 9 (every k-th)", mypaint),
    ("pydicom", "pip", "pydicom", "2.4.4", "grey medical",
     "every pydicom/data/test_files/*.dcm that reads, with uncompressed MONOCHROME pixel data, "
     "one frame, both sides >= 64, modality not SEG or RTDOSE (identical pixels kept once)",
     pydicom_images),
    ("pywt", "pip", "PyWavelets", "1.4.1", "grey photo",
     "pywt/data/aero.npz and ascent.npz (camera.npz skipped: scikit-image's camera)",
     pywt_images),
    ("scipy", "pip", "scipy", "1.9.3", "photo",
     "scipy/misc/face.dat (ascent.dat skipped: the same picture as PyWavelets' ascent)",
     scipy_images),
    ("mahotas", "pip", "mahotas", "1.4.18", "photo, micrograph",
     "every .jpg/.png in mahotas/demos/data except lena.jpg (withdrawn from many projects)",
     mahotas_images),
]


# What the rules let in that a reader of the results should know (written after looking at the
# converted set, before any model read it; nothing was dropped for it).
NOTES = {
    "near_duplicates": "views of one scene: opencv__aloeL/aloeR, basketball1/basketball2, "
                       "ela_original/ela_modified, leuvenA/leuvenB, left/right, aero1/aero3",
    "closest_to_the_models_scenes": "gnome__pixels-l (small coloured drawn objects on a flat tan "
                                    "ground seen from above), opencv__blox (a photograph of grey "
                                    "blocks on a table), opencv__stuff (a photograph of a pen, "
                                    "a lighter and a lid on a table)",
    "not_photographs": "artwork: gnome__*, many plasma__ and ukui__ wallpapers; drawings and "
                       "logos: opencv__HappyFish, LinuxLogo, WindowsLogo, pca_test1; "
                       "pydicom__image_dfl is a synthetic grey test pattern; opencv__digits "
                       "handwritten digits; opencv__aloeGT a disparity map",
}


# ---- set 2: sources shared with none of set 1 --------------------------------------------------

MINETEST_TILES = 4  # each 16x16 block face: tiled 4x4, then each pixel made 4x4 (256x256)


def tuxpaint(root):
    return [(p.name, Image.open(p)) for p in images_in(root / "usr/share/tuxpaint/templates")]


def palapeli_photos(root):
    return [(p.name, Image.open(p)) for p in images_in(root / "usr/share/palapeli/collection")]


def palapeli_textures(root):
    return [(p.name, Image.open(p)) for p in images_in(root / "usr/share/palapeli/backgrounds")]


KSTARS_PLANETS = ("jupiter", "mars", "mercury", "neptune", "pluto", "saturn", "sun", "uranus",
                  "venus")


def kstars(root):
    folder = root / "usr/share/kstars/textures"
    out = [(n + ".png", Image.open(folder / (n + ".png"))) for n in KSTARS_PLANETS]
    moons = [p for p in images_in(folder, (".png",)) if re.fullmatch(r"moon\d\d\.png", p.name)]
    return out + [(p.name, Image.open(p)) for p in capped(moons, 6)]


def xplanet(root):
    return [(p.name, Image.open(p))
            for p in images_in(root / "usr/share/xplanet/images", (".jpg",))]


CIMG_FILES = ("milla.bmp", "parrot.ppm", "sh0r.pgm", "sh1r.pgm")


def cimg(root):
    folder = root / "usr/share/doc/cimg-dev/examples/img"
    return [(n, Image.open(folder / n)) for n in CIMG_FILES]


def imgaug_images(root):
    return [("quokka.jpg", Image.open(root / "imgaug/quokka.jpg"))]


def lxde(root):
    return [(p.name, Image.open(p)) for p in images_in(root / "usr/share/lxde/wallpapers")]


def xfce(root):
    return [(p.name, Image.open(p)) for p in images_in(root / "usr/share/backgrounds/xfce")]


SWAY_FILE = "Sway_Wallpaper_Blue_2048x1536.png"


def sway(root):
    return [(SWAY_FILE, Image.open(root / "usr/share/backgrounds/sway" / SWAY_FILE))]


def digikam(root):
    folder = root / "usr/share/digikam/data"
    files = sorted(folder.glob("*-texture.png")) + sorted(folder.glob("*-pattern.png"))
    return [(p.name, Image.open(p)) for p in sorted(files)]


def etr(root):
    files = images_in(root / "usr/share/games/etr/terrains", (".png",))
    return [(p.name, Image.open(p)) for p in capped(files, 21)]


def krita(root):
    files = images_in(root / "usr/share/krita/patterns", (".png",))
    return [(p.name, Image.open(p)) for p in capped(files, 12)]


def minetest(root):
    folder = root / "usr/share/games/minetest/games/minetest_game/mods/default/textures"
    faces = []
    for p in images_in(folder, (".png",)):
        im = Image.open(p)
        if im.size == (16, 16) and (np.asarray(im.convert("RGBA"))[..., 3] == 255).all():
            faces.append(p)
    out = []
    for p in capped(faces, 15):
        face = Image.open(p).convert("RGB")
        tiled = Image.new("RGB", (16 * MINETEST_TILES, 16 * MINETEST_TILES))
        for y in range(MINETEST_TILES):
            for x in range(MINETEST_TILES):
                tiled.paste(face, (16 * x, 16 * y))
        side = 16 * MINETEST_TILES * 4
        out.append((p.name, tiled.resize((side, side), Image.Resampling.NEAREST)))
    return out


NIFTI_TYPES = {2: "u1", 4: "i2", 8: "i4", 16: "f4", 64: "f8", 256: "i1", 512: "u2", 768: "u4"}


def read_nifti(path):
    """A single-file NIfTI-1 volume (.nii or .nii.gz) as a numpy array in x, y, z[, t] order,
    scaled by scl_slope/scl_inter when the slope is set."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    e = "<" if struct.unpack("<i", raw[:4])[0] == 348 else ">"
    if struct.unpack(e + "i", raw[:4])[0] != 348:
        raise ValueError(f"{path}: not a NIfTI-1 file")
    dim = struct.unpack(e + "8h", raw[40:56])
    dtype = np.dtype(e + NIFTI_TYPES[struct.unpack(e + "h", raw[70:72])[0]])
    offset = int(struct.unpack(e + "f", raw[108:112])[0])
    slope, inter = struct.unpack(e + "2f", raw[112:120])
    shape = dim[1:1 + dim[0]]
    a = np.frombuffer(raw, dtype=dtype, count=int(np.prod(shape)), offset=offset)
    a = a.reshape(shape, order="F").astype(np.float64)
    return a * slope + inter if slope not in (0.0, 1.0) or inter != 0.0 else a


def middle_slices(vol, axes):
    """The middle slice across each of axes of the first 3-D volume, rotated so that the volume's
    second (or third) axis runs up the picture."""
    vol = vol.reshape(vol.shape[:3] + (-1,))[..., 0]
    return [np.rot90(np.take(vol, vol.shape[axis] // 2, axis=axis)) for axis in axes]


def nifti_slices(files, axes):
    out = []
    for p in files:
        for axis, a in zip(axes, middle_slices(read_nifti(p), axes), strict=True):
            out.append((f"{p.name.split('.')[0]}_axis{axis}", a))
    return out


MRICRON_FILES = ("ch2better.nii.gz", "inia19-t1-brain.nii.gz")


def mricron(root):
    folder = root / "usr/share/mricron/templates"
    return nifti_slices([folder / n for n in MRICRON_FILES], (0, 1, 2))


def nilearn_images(root):
    folder = root / "nilearn/datasets/data"
    return nifti_slices([folder / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"], (0, 1, 2))


def nibabel_images(root):
    return nifti_slices([root / "nibabel/tests/data/example4d.nii.gz"], (2,))


DIPY_VOLUMES = ("S0_10slices.nii.gz", "aniso_vox.nii.gz", "test_piesno.nii.gz")


def dipy_images(root):
    folder = root / "dipy/data/files"
    return ([("t1_coronal_slice.npy", np.load(folder / "t1_coronal_slice.npy"))]
            + nifti_slices([folder / n for n in DIPY_VOLUMES], (2,)))


FITS_TYPES = {8: "u1", 16: "i2", 32: "i4", 64: "i8", -32: "f4", -64: "f8"}


def read_fits_images(path):
    """The uncompressed 2-D images of a FITS file (primary array and IMAGE extensions), each
    scaled by BSCALE/BZERO and flipped so that FITS row 1 is at the bottom."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    pos, out = 0, []
    while pos + 2880 <= len(raw):
        cards, end = {}, False
        while not end:
            block = raw[pos:pos + 2880]
            pos += 2880
            if len(block) < 2880:
                return out
            for i in range(0, 2880, 80):
                card = block[i:i + 80].decode("ascii", "replace")
                if card[:8].strip() == "END":
                    end = True
                    break
                if card[8:10] == "= ":
                    cards.setdefault(card[:8].strip(), card[10:].split("/")[0].strip(" '"))
        naxis, bitpix = int(cards.get("NAXIS", 0)), int(cards["BITPIX"])
        shape = [int(cards[f"NAXIS{i}"]) for i in range(1, naxis + 1)]
        n = int(np.prod(shape)) if naxis else 0
        size = abs(bitpix) // 8 * (n + int(cards.get("PCOUNT", 0) or 0)) \
            * int(cards.get("GCOUNT", 1) or 1)
        if naxis == 2 and cards.get("XTENSION", "IMAGE") == "IMAGE" and "ZIMAGE" not in cards:
            a = np.frombuffer(raw, dtype=">" + FITS_TYPES[bitpix], count=n, offset=pos)
            a = a.reshape(shape[::-1]).astype(np.float64)
            out.append(np.flipud(a * float(cards.get("BSCALE", 1)) + float(cards.get("BZERO", 0))))
        pos += -(-size // 2880) * 2880
    return out


def sunpy_images(root):
    folder = root / "sunpy/data/test"
    out = []
    for p in sorted(list(folder.glob("*.fits")) + list(folder.glob("*.fits.gz"))
                    + list(folder.glob("EIT/*.fits")), key=lambda p: p.name):
        for a in read_fits_images(p):
            if min(a.shape) >= 64:
                out.append((p.name.split(".fits")[0] + ".fits",
                            np.where(np.isfinite(a), a, np.nanmin(a))))
    return out + [(p.name, Image.open(p)) for p in sorted(folder.glob("*.jp2"))]


SOURCES_2 = [
    ("tuxpaint", "deb", "tuxpaint-data", "1:0.9.28-sdl2-1", "photo",
     "every .jpg in usr/share/tuxpaint/templates", tuxpaint),
    ("palapeli", "deb", "palapeli-data", "4:22.12.3-1", "photo",
     "every .jpg in usr/share/palapeli/collection (the puzzle pictures)", palapeli_photos),
    ("palapelibg", "deb", "palapeli-data", "4:22.12.3-1", "texture (coloured)",
     "every .jpg in usr/share/palapeli/backgrounds (the table textures; background.svg "
     "skipped)", palapeli_textures),
    ("kstars", "deb", "kstars-data", "5:3.6.2-2", "photo (planets, the Moon)",
     "usr/share/kstars/textures/{" + ",".join(KSTARS_PLANETS) + "}.png and the moonNN.png "
     "phases capped at 6 (every k-th); the drawn sky-object symbols skipped", kstars),
    ("xplanet", "deb", "xplanet-images", "1.3.1-3", "photo (Earth maps, the Sun)",
     "every .jpg in usr/share/xplanet/images (the small spacecraft .png icons skipped)",
     xplanet),
    ("cimg", "deb", "cimg-examples", "3.2.1+dfsg-1", "photo, some grey",
     "usr/share/doc/cimg-dev/examples/img/" + ", ".join(CIMG_FILES)
     + " (logo.bmp, a drawing, and parrot_mask.pgm, a mask, skipped)", cimg),
    ("imgaug", "pip", "imgaug", "0.4.0", "photo",
     "imgaug/quokka.jpg (its depth map skipped)", imgaug_images),
    ("lxde", "deb", "lxde-common", "0.99.2-4", "artwork",
     "every .jpg in usr/share/lxde/wallpapers", lxde),
    ("xfce", "deb", "xfdesktop4-data", "4.18.1-1", "artwork",
     "every .jpg/.png in usr/share/backgrounds/xfce (SVGs skipped)", xfce),
    ("sway", "deb", "sway-backgrounds", "1.7-6", "artwork",
     f"usr/share/backgrounds/sway/{SWAY_FILE} (the other files are the same design at other "
     "sizes)", sway),
    ("digikam", "deb", "digikam-data", "4:7.9.0-1", "texture",
     "every *-texture.png and *-pattern.png in usr/share/digikam/data", digikam),
    ("etr", "deb", "extremetuxracer-data", "0.8.2-1", "texture (terrain: snow, ice, rock, "
     "grass)", "every .png in usr/share/games/etr/terrains, capped at 21 (every k-th)", etr),
    ("krita", "deb", "krita-data", "1:5.1.5+dfsg-2+deb12u1", "texture (grey: paper, canvas, "
     "rock)", "every .png in usr/share/krita/patterns, capped at 12 (every k-th; the .pat "
     "dither and line patterns skipped)", krita),
    ("minetest", "deb", "minetest-data", "5.6.1+dfsg+~1.9.0mt8+dfsg-2", "texture (pixel art)",
     "every fully opaque 16x16 .png in usr/share/games/minetest/games/minetest_game/mods/"
     f"default/textures (the block faces; items with a transparent ground skipped), capped at "
     f"15 (every k-th), each tiled {MINETEST_TILES}x{MINETEST_TILES} and enlarged 4 times by "
     "nearest neighbour (256x256)", minetest),
    ("mricron", "deb", "mricron-data", "1.2.20211006+dfsg-4", "grey medical (MRI templates)",
     "usr/share/mricron/templates/" + ", ".join(MRICRON_FILES) + ": the middle slice across "
     "each of the three axes (the label atlases skipped)", mricron),
    ("nilearn", "pip", "nilearn", "0.14.1", "grey medical (MRI template)",
     "nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz: the middle slice "
     "across each of the three axes (the grey and white matter maps skipped)", nilearn_images),
    ("nibabel", "pip", "nibabel", "5.4.2", "grey medical (fMRI)",
     "nibabel/tests/data/example4d.nii.gz: the middle slice across the third axis of the first "
     "volume (the other test volumes are below 64 px, synthetic or not NIfTI-1)",
     nibabel_images),
    ("dipy", "pip", "dipy", "1.11.0", "grey medical (MRI)",
     "dipy/data/files/t1_coronal_slice.npy, and the middle slice across the third axis of the "
     "first volume of " + ", ".join(DIPY_VOLUMES), dipy_images),
    ("sunpy", "pip", "sunpy", "6.0.6", "grey scientific (the Sun)",
     "every uncompressed 2-D image with both sides >= 64 in sunpy/data/test/*.fits[.gz] and "
     "EIT/*.fits (FITS row 1 at the bottom; not-a-number pixels set to the least value), and "
     "every sunpy/data/test/*.jp2", sunpy_images),
]

# Written after looking at the converted set 2, before any model read it; nothing was dropped.
NOTES_2 = {
    "disjoint_from": "set 1 (" + ", ".join(s[2] for s in SOURCES) + "), scikit-image's sample "
                     "data, matplotlib's and scikit-learn's pictures",
    "near_duplicates": "cimg__sh0r/sh1r (one face, two shots); kstars__moon00..moon30 (one Moon "
                       "photograph at six phases); mricron__ch2better_axis*, inia19-t1-brain_axis* "
                       "and nilearn__mni_icbm152_* (three slices of each of three brain "
                       "templates); sunpy__efz20040301.000010_s/efz20040301.010016_s (the Sun an "
                       "hour apart); lxde__lxde_blue/green/red and xfce__xfce-blue/stripes/teal/"
                       "verticals (one design in several colours); minetest__default_*_wood and "
                       "*_tree faces (one drawing recoloured)",
    "closest_to_the_models_scenes": "xfce__* and sway__Sway_Wallpaper_Blue_2048x1536 (one small "
                                    "logo on a plain blue ground); krita__23-dynamic-screentone-A "
                                    "(25x25 px: one dark blurred dot on white); "
                                    "sunpy__hsi_image_20101016_191218 (one small bright blob on "
                                    "a dark ground); kstars__* and the sunpy discs (one large "
                                    "round body on a plain white or black ground); "
                                    "minetest__default_bookshelf (rows of small coloured books); "
                                    "tuxpaint__sheep (small sheep far off on a green field)",
    "not_photographs": "artwork: lxde__*, xfce__*, sway__*; drawn or synthetic textures: "
                       "krita__09b_drawed-CrossedLines, 12_drawed_vertical, "
                       "23-dynamic-screentone-A, Stars_Sized, minetest__* (16 px pixel art); "
                       "xplanet__sun is a nearly uniform yellow map and xplanet__night a nearly "
                       "black one (city lights); mricron__/nilearn__ templates are averages of "
                       "many brains; sunpy__heliographic_phase_map is a helioseismic map",
}


# ---- conversion -----------------------------------------------------------------------------

def window(a):
    """More than 8 bits -> [0, 255] by the 1st-99th percentile."""
    a = np.asarray(a, dtype=np.float64)
    lo, hi = np.percentile(a, [1, 99])
    a = np.clip((a - lo) / (hi - lo if hi > lo else 1.0), 0.0, 1.0)
    return np.round(a * 255).astype(np.uint8)


def to_rgb(img):
    if isinstance(img, Image.Image):
        img = ImageOps.exif_transpose(img)
        if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
            img = np.asarray(img)
    if isinstance(img, np.ndarray):
        img = Image.fromarray(img if img.dtype == np.uint8 else window(img))
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
    img = img.convert("RGB")
    w, h = img.size
    if max(w, h) > MAX_SIDE:
        s = MAX_SIDE / max(w, h)
        img = img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.LANCZOS)
    return img


# ---- downloads ------------------------------------------------------------------------------

def run(cmd, cwd, env=None):
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    if r.returncode:
        last = (r.stderr.strip().splitlines() or ["no message"])[-1]
        raise RuntimeError(f"{' '.join(cmd)} failed: {last}")
    return r.stdout


def fetch_deb(package, work):
    run(["apt-get", "download", package], work)
    deb = sorted(work.glob(f"{package}_*.deb"))[-1]
    version = run(["dpkg-deb", "-f", str(deb), "Version"], work).strip()
    root = work / f"deb_{package}"
    run(["dpkg", "-x", str(deb), str(root)], work)
    return root, version


def fetch_wheel(package, version, work):
    run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", *PIP_TARGET,
         "-d", str(work), f"{package}=={version}"], work)
    wheel = [p for p in work.glob("*.whl")
             if p.name.lower().startswith(package.lower() + "-" + version)][0]
    root = work / f"whl_{package}"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(root)
    return root, version


def check_tools(kinds):
    if "deb" in kinds:
        for tool in ("apt-get", "dpkg", "dpkg-deb"):
            if shutil.which(tool) is None:
                return f"{tool} not found: the Debian sources need apt-get and dpkg (a Debian " \
                       f"or Ubuntu machine); pass --sources with PyPI sources only"
    if "pip" in kinds:
        r = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True)
        if r.returncode:
            return f"pip not found for {sys.executable}: install pip (python -m ensurepip)"
    return None


SETS = {1: (SOURCES, NOTES, "photos_test"), 2: (SOURCES_2, NOTES_2, "photos_test2")}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--set", type=int, default=1, dest="which",
                   help="which test set: 1 (SOURCES, the default) or 2 (SOURCES_2)")
    p.add_argument("--out", default=None,
                   help="folder for the PNGs (default ./photos_test for set 1, ./photos_test2 for "
                        "set 2); the SOURCE__*.png an earlier run wrote there are removed first")
    p.add_argument("--manifest", default=None, help="write the JSON manifest here")
    p.add_argument("--sources", nargs="+", default=None, metavar="NAME",
                   help="sources to fetch (default: all of the set's; set 1: "
                        + ", ".join(s[0] for s in SOURCES) + "; set 2: "
                        + ", ".join(s[0] for s in SOURCES_2) + ")")
    args = p.parse_args(argv)
    if args.which not in SETS:
        print(f"error: --set {args.which} is not a set; use 1 or 2", file=sys.stderr)
        return 2
    sources, notes, default_out = SETS[args.which]
    names = [s[0] for s in sources]
    bad = [s for s in (args.sources or names) if s not in names]
    if bad:
        print(f"error: --sources {bad[0]} is not a source of set {args.which}; use some of: "
              f"{', '.join(names)}", file=sys.stderr)
        return 2
    chosen = [s for s in sources if s[0] in (args.sources or names)]
    problem = check_tools({s[1] for s in chosen})
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2

    out_dir = Path(args.out or default_out)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*__*.png"):  # what an earlier run wrote
        old.unlink()
    manifest = {"command": "python benchmarks/get_photographs.py " + " ".join(
                    sys.argv[1:] if argv is None else argv),
                "pillow": Image.__version__, "numpy": np.__version__,
                "max_side": MAX_SIDE, "notes": notes, "sources": {}, "images": []}
    with tempfile.TemporaryDirectory(prefix="photos_") as tmp:
        for source, kind, package, version, content, rule, collect in chosen:
            work = Path(tmp) / source
            work.mkdir()
            try:
                if kind == "deb":
                    root, got = fetch_deb(package, work)
                else:
                    root, got = fetch_wheel(package, version, work)
            except (RuntimeError, IndexError) as e:
                print(f"error: could not fetch {package} for source {source}: {e}",
                      file=sys.stderr)
                return 2
            if got != version:
                print(f"note: {package} is {got} now, this set was made from {version}")
            seen, n = set(), 0
            for original, img in collect(root):
                rgb = to_rgb(img)
                pixels = hashlib.sha256(rgb.tobytes() + repr(rgb.size).encode()).hexdigest()
                if pixels in seen:
                    continue
                seen.add(pixels)
                stem = re.sub(r"[^A-Za-z0-9._+-]", "_", str(Path(original).with_suffix("")))
                name = f"{source}__{stem}.png"
                buf = io.BytesIO()
                rgb.save(buf, format="PNG")
                (out_dir / name).write_bytes(buf.getvalue())
                a = np.asarray(rgb)
                manifest["images"].append({
                    "name": name, "source": source, "original": original,
                    "sha256": hashlib.sha256(buf.getvalue()).hexdigest(),
                    "grey": bool((a[..., 0] == a[..., 1]).all() and (a[..., 1] == a[..., 2]).all()),
                    "width": rgb.size[0], "height": rgb.size[1]})
                n += 1
            manifest["sources"][source] = {"package": package, "version": got,
                                           "from": "Debian" if kind == "deb" else "PyPI",
                                           "content": content, "rule": rule, "n": n}
            print(f"{source:11s} {package} {got}: {n} images")
            shutil.rmtree(work)
    manifest["n"] = len(manifest["images"])
    n_grey = sum(i["grey"] for i in manifest["images"])
    print(f"wrote {manifest['n']} PNGs ({n_grey} grey) to {out_dir}")
    if args.manifest:
        Path(args.manifest).parent.mkdir(parents=True, exist_ok=True)
        Path(args.manifest).write_text(json.dumps(manifest, indent=1) + "\n")
        print(f"wrote {args.manifest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
