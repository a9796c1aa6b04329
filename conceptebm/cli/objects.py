"""``--objects K|auto`` of ``conceptebm infer`` and ``conceptebm energy-map``.

    conceptebm infer scene.png --objects auto          # how many objects, and where
    conceptebm infer scene.png --objects 2 --json      # the two lowest basins
    conceptebm energy-map scene.png --objects auto -o map.png

``auto`` counts the objects with the rule fitted on validation scenes
(:func:`conceptebm.scenes.count_objects`; ``benchmarks/counting.py``) and says "no object
found" when the count is 0; an integer ``K`` takes the ``K`` lowest separated basins of the
energy map, as before. Each image is read on its own.
"""

from __future__ import annotations

from conceptebm.cli.validate import CommandError, OptionType

__all__ = ["OBJECTS", "MAX_OBJECTS", "objects_rows", "objects_text", "check_position_model"]

MAX_OBJECTS = 16


def _objects(text: str):
    text = text.strip()
    if text == "auto":
        return "auto"
    v = int(text)
    if not 1 <= v <= MAX_OBJECTS:
        raise ValueError(text)
    return v


#: argparse type of ``--objects``: ``auto`` or an integer in 1..16.
OBJECTS = OptionType(f"must be 'auto' or an integer in [1, {MAX_OBJECTS}]", _objects,
                     ["0", str(MAX_OBJECTS + 1), "abc", "1.5", "Auto2"], "count")


def check_position_model(model) -> None:
    """Refuse ``--objects`` for a model that does not read a 2-D position."""
    c = model.concept
    if c.is_categorical or c.dim != 2:
        raise CommandError(f"--objects: finding objects needs a 2-D position model; "
                           f"{c.name!r} is {c.kind} of dim {c.dim} (use --model "
                           "position_late or position_contrastive)")


def objects_rows(model, images, paths: list[str], k) -> list[dict]:
    """One JSON row per image ``(n, 3, H, W)``: its objects (``value``, ``energy``, and for
    ``auto`` ``score`` and ``radius_90``), their ``count`` and, for ``auto``, the ``rule``."""
    from conceptebm.scenes.inference import locate_objects
    from conceptebm.scenes.objects import energy_score

    check_position_model(model)
    name = model.concept.name
    rows = []
    if k == "auto":
        try:
            r = locate_objects(model, images, "auto")
        except ValueError as err:  # no calibration in the model's record
            raise CommandError(f"--objects auto: {err}") from None
        for i, path in enumerate(paths):
            rows.append({"image": path, "concept": name, "objects_asked": "auto",
                         "count": int(r.found[i]), "objects": r.objects(i), "rule": r.rule,
                         **({} if r.familiarity is None
                            else {"familiarity": round(float(r.familiarity[i]), 4)})})
        return rows
    b = locate_objects(model, images, int(k))
    cal = (getattr(model, "record", None) or {}).get("energy_calibration")
    for i, path in enumerate(paths):
        objs = []
        for j in range(int(b.found[i])):
            obj = {"value": [float(v) for v in b.points[i, j]], "energy": float(b.energy[i, j])}
            if cal:
                obj["score"] = float(energy_score(b.energy[i, j], cal))
            objs.append(obj)
        rows.append({"image": path, "concept": name, "objects_asked": int(k),
                     "count": len(objs), "objects": objs})
    return rows


def objects_text(row: dict) -> str:
    """A row of :func:`objects_rows` as text: ``PATH: no object found`` or one line per
    object."""
    name = row["concept"]
    if row["objects_asked"] == "auto" and row["count"] == 0:
        if row.get("familiarity", 0.0) > 1.0:
            return (f"{row['image']}: no object found: the image is unlike the scenes the "
                    "model was trained on")
        return f"{row['image']}: no object found"
    what = "found" if row["objects_asked"] == "auto" else "asked for"
    lines = [f"{row['image']}: {row['count']} object{'s' if row['count'] != 1 else ''} {what}"]
    for j, obj in enumerate(row["objects"]):
        value = ", ".join(f"{v:+.3f}" for v in obj["value"])
        radius = f" +- {obj['radius_90']:.3f} (90%)" if "radius_90" in obj else ""
        lines.append(f"  object {j + 1}: {name} = ({value}){radius}   (energy "
                     f"{obj['energy']:.4g})")
    return "\n".join(lines)


def run_objects(model, args) -> int:
    """``conceptebm infer IMAGES --objects K|auto``: each image's objects, ``CHUNK`` images
    at a time; text, or one JSON list with ``--json``."""
    import json

    from conceptebm.cli.infer_folder import expand_images
    from conceptebm.cli.models import load_images

    check_position_model(model)
    paths = expand_images(args.images)  # a folder: its image files, sorted
    rows = []
    for lo in range(0, len(paths), CHUNK):
        chunk = paths[lo:lo + CHUNK]
        part = objects_rows(model, load_images(chunk, model, args.resize), chunk, args.objects)
        if not args.json:
            for row in part:
                print(objects_text(row), flush=True)
        rows += part
    if args.json:
        print(json.dumps(rows, indent=2))
    return 0


CHUNK = 64  # images read and searched at a time
