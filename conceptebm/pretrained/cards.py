"""Model cards: what a model reads, how it was trained, what it measured and where it fails.

:func:`model_card` writes a card from a loaded model's record (``model.record``, see
:func:`conceptebm.load`), so a card says nothing its checkpoint does not back: the concept and
its range or categories, the net, the training command and time, the sampler and MAP settings,
the calibration of "no object found", every metric with its standard error and the command
that measured it. The shipped models add their intended use and known limits
(:data:`USE_AND_LIMITS`, each limit with the measured numbers behind it).
``conceptebm models show NAME`` prints it.

Example:
    >>> import conceptebm
    >>> card = model_card(conceptebm.load("position_late"), name="position_late")
    >>> print(card.splitlines()[0])
    # position_late
    >>> "## Known limits" in card and "single_mae.clutter" in card
    True
"""

from __future__ import annotations

import math
from collections.abc import Mapping

__all__ = ["model_card", "summary", "USE_AND_LIMITS"]

#: Intended use and known limits of each shipped model, as measured (the numbers are keys of its
#: record's metrics, so the card shows them beside the text).
USE_AND_LIMITS: dict[str, dict[str, str]] = {
    "position": {
        "use": "generating single-object default-camera scenes at a position; reading a "
               "position when robustness to pixel noise matters more than precision",
        "limits": "Trained by contrastive divergence: its energy map has one deep basin, so "
                  "it finds one object in a scene that holds two; read positions with "
                  "position_contrastive or position_late.",
    },
    "position_cd": {
        "use": "generating scenes with several objects (one concept at two values, e.g. "
               "position=(-0.6,-0.6) & position=(0.6,0.6))",
        "limits": "A generator: not the reader to use for inference.",
    },
    "color": {"use": "generating one of eight colours of the scene's object (read colours "
                     "with color_late, the default of conceptebm infer --concept color)",
              "limits": "Knows the eight palette colours of the renderer only."},
    "shape": {"use": "generating sphere, cube or cylinder (read shapes with shape_late, the "
                     "default of conceptebm infer --concept shape)",
              "limits": "An empty scene gets an energy like a real one's, so it cannot say "
                        "'no object found'; generated shapes are right about three times in "
                        "four (shape.acc)."},
    "size": {"use": "generating an object's size (read sizes with size_late, the default of "
                    "conceptebm infer --concept size: 76x faster, MAE 0.013 against 0.034)",
             "limits": "An empty scene gets an energy like a real one's, so it cannot say "
                       "'no object found'."},
    "position_contrastive": {
        "use": "the position of the object(s) in default-camera scenes, robust to pixel "
               "noise, grey clutter and unseen light (the default reader of conceptebm infer "
               "until position_late_robust matched it on every robustness column)",
        "limits": "Knows the default camera only (use position_multiview for other views); "
                  "early-conditioned: each candidate position costs a full network pass, so "
                  "it reads a few images per second per core.",
    },
    "position_late": {
        "use": "fast position reading (one trunk pass per image) in clean or noisy "
               "default-camera scenes, and large energy maps",
        "limits": "Loses to position_contrastive on grey clutter and unseen light "
                  "(single_mae.clutter, single_mae.lighting against single_mae.clean); not "
                  "the default reader for that reason.",
    },
    "position_late_robust": {
        "use": "the default reader of conceptebm infer: fast position reading (one trunk "
               "pass per image) in default-camera scenes with pixel noise, grey clutter, light "
               "from any direction, one or two objects",
        "limits": "Knows the default camera only. Its training randomised grey clutter, "
                  "light wider than the unseen-light test, noise and blur, so "
                  "robustness.clutter and robustness.light measure it inside its training "
                  "range, not beyond. On a plain ground of a colour no training set used it "
                  "reads 8% of scenes more than 0.15 off (MAE 0.075 +- 0.016, against "
                  "position_late's 0.021 and position_contrastive's 0.153; JPEG quality 40: "
                  "0.034; benchmarks/results/robustness_full.json, fresh test seed 20261211). "
                  "Trained 2,300 of 4,000 "
                  "scheduled iterations (time limit). Its energy alone answers a uniform-noise "
                  "image and 34 of 164 real photographs, textures and scientific images; the "
                  "familiarity check in its record leaves 1 of 164 answered "
                  "(benchmarks/results/photographs_fresh2.json, read once) and 0 of 8,005 "
                  "object-free images (benchmarks/results/false_alarms.json), and refuses 21% "
                  "of scenes on a ground colour it never saw. Posterior temperature 0.710 "
                  "(fitted on 1,000 validation scenes): its 90% intervals cover 0.917 +- "
                  "0.014 of fresh test scenes (seed 20261210; "
                  "benchmarks/results/posteriors.json), in the upper half of the 0.87-0.93 "
                  "band.",
    },
    "position_multiview": {
        "use": "position from one or several views taken from any camera (their energies add)",
        "limits": "A single view is ambiguous (multiview_mae.1); use four or more views for "
                  "a precise answer; its NUTS intervals were checked on 4-view sets only. "
                  "Answers 7 of 164 real photographs, textures and scientific images "
                  "(benchmarks/results/photographs_fresh2.json; its energy alone 118; read "
                  "at the default energy margin). A single view with its object removed is "
                  "answered 11 of 1,000 times at its energy margin 0 (chosen on validation; "
                  "162 at the default margin 1) and 2.0% of real single views are refused "
                  "(benchmarks/results/false_alarms_multiview.json, fresh seed 20261216): "
                  "prefer position_multiview_late, which answers none.",
    },
    "position_multiview_late": {
        "use": "position from one or several views taken from any camera (their energies "
               "add), one trunk pass per view: the reader for views from other sides",
        "limits": "Each view's camera is estimated from the faint colour gradient of the "
                  "multiview set's ground (azimuth any, elevation 35-75 deg, distance "
                  "7.5-9.5): on default-camera scenes, whose ground has no gradient, it reads "
                  "about chance (use position_late_robust there); other cameras are "
                  "untested. A uniform-noise image is answered, not refused. Answers 0 of 1,000 "
                  "single views of the multiview set with the object removed, refusing 0.2% "
                  "of real ones (benchmarks/results/false_alarms_multiview.json). Answers 7 of "
                  "164 "
                  "real photographs, textures and scientific images (within the 1-in-20 "
                  "target, the most of any reader with position_multiview; "
                  "benchmarks/results/photographs_fresh2.json). Trained 7,421 of "
                  "8,000 scheduled iterations (time limit).",
    },
    "shape_late": {
        "use": "the default reader of conceptebm infer --concept shape: sphere, cube or "
               "cylinder of the object in default-camera scenes, one trunk pass per image",
        "limits": "Knows the default camera and one object (the pooled readout mixes several "
                  "objects); clean renders only in training, so accuracy falls under pixel "
                  "noise (shape.acc_noise_0.1). The grey image is answered, not refused "
                  "(blank_answered_of_5; object-free images were among its training "
                  "negatives, so that column is not a held-out test). Categories are read "
                  "exactly: its speed-up over the early shape EBM is small (three values). "
                  "Answers 6 of 164 real photographs, textures and scientific images (ground "
                  "textures, a bookshelf, a maze; early shape 0; "
                  "benchmarks/results/photographs_fresh2.json, read once).",
    },
    "size_late": {
        "use": "the default reader of conceptebm infer --concept size: the object's size in "
               "default-camera scenes, one trunk pass per image",
        "limits": "Knows the default camera and one object; MAP at the default 1-D settings "
                  "(101-point grid, 60 Adam steps), not chosen on validation. Object-free "
                  "images were among its training negatives, so blank_answered_of_5 is not "
                  "a held-out test. Answers 2 of 164 real photographs, textures and scientific "
                  "images (early size 2; benchmarks/results/photographs_fresh2.json).",
    },
    "color_late": {
        "use": "the default reader of conceptebm infer --concept color: one of the eight "
               "palette colours of the object in default-camera scenes, one trunk pass per "
               "image",
        "limits": "Knows the renderer's eight palette colours and one object. The empty "
                  "ground of the test renders is answered, not refused, where the early color "
                  "EBM refuses all five object-free images (blank_answered_of_5), and it "
                  "refuses 0.008 of real scenes (refused_real) against the early EBM's "
                  "0.002. It was tuned with four object-free images a step (empty ground, "
                  "smooth noise); eight with flat colours and pixel noise among them answered "
                  "more of them on validation (2 of 5 against 1) and read colours worse "
                  "(0.994 against 0.996), so it was not chosen. Answers 2 of 164 real "
                  "photographs, textures and scientific images (early color 0; "
                  "benchmarks/results/photographs_fresh2.json, read once); its energy alone "
                  "answers 105 of them, so it leans on the familiarity check.",
    },
}


def _concept_text(concept) -> str:
    if concept.is_categorical:
        values = ", ".join(concept.values)
        return f"{concept.name}: categorical, {len(concept.values)} values ({values})"
    return (f"{concept.name}: continuous, {concept.dim}-D, range {concept.low:g} to "
            f"{concept.high:g}")


def _metric_rows(metrics: Mapping) -> list[str]:
    rows = []
    for key in sorted(metrics):
        if key.endswith("_stderr"):
            continue
        value = metrics[key]
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        se = metrics.get(f"{key}_stderr")
        shown = f"{value:.4g}" + (f" ± {se:.2g}" if isinstance(se, (int, float))
                                  and math.isfinite(se) else "")
        rows.append(f"| {key} | {shown} |")
    return rows


def summary(record: Mapping, name: str) -> str:
    """One line: the name, the concept and what the model is for, from the model's record
    alone (its checkpoint header, :func:`conceptebm.checkpoints.read_record`: listing
    models loads no weights).

    Example:
        >>> summary({"net": {"concept": {"name": "position"}}}, "position_late")[:32]
        'position_late          position '
    """
    use = USE_AND_LIMITS.get(name, {}).get("use") or record.get("purpose") or "-"
    concept = (record.get("net") or {}).get("concept") or {}
    return f"{name:<22} {concept.get('name', '-'):<9} {use}"


def model_card(model, *, name: str | None = None) -> str:
    """A Markdown card of a loaded model (``conceptebm.load(...)``), written from its record.

    ``name``: the shipped name (adds intended use and known limits), or a label for a model
    of your own (its record's ``purpose`` is the use; limits are yours to state).
    """
    record = model.record
    title = name or "model"
    lines = [f"# {title}", "", f"- Concept: {_concept_text(model.concept)}",
             f"- Net: {record.get('net', {}).get('type', type(model).__name__)}"]
    known = USE_AND_LIMITS.get(name or "", {})
    use = known.get("use") or record.get("purpose")
    if use:
        lines.append(f"- Intended use: {use}")
    lines += ["", "## Training", ""]
    if record.get("command"):
        lines.append(f"- Command (as recorded when it was trained): `{record['command']}`")
    if isinstance(record.get("training_time_s"), (int, float)):
        lines.append(f"- Training time: {record['training_time_s'] / 60:.1f} min on a 2-core CPU")
    if record.get("iteration") is not None:
        lines.append(f"- Checkpoint: iteration {record['iteration']}")
    if record.get("frozen"):
        frozen = ", ".join(map(str, record["frozen"]))
        lines.append(f"- Trained inside the composition with: {frozen}")
    if record.get("recipe_note"):
        lines.append(f"- Recipe: {record['recipe_note']}")
    lines += ["", "## Settings", ""]
    if model.sampler is not None:
        s = model.sampler
        lines.append(f"- Sampler: {s.num_steps} Langevin steps of size {s.step_size:g}, noise "
                     f"{s.noise_scale:g}, from {s.init} noise"
                     + (f", then {s.denoise_steps} noise-free" if s.denoise_steps else ""))
    m = model.map_settings
    if m is not None:
        grid = "the concept's default" if m.grid is None else f"{m.grid} per coordinate"
        lines.append(f"- MAP: start grid {grid}, {m.steps} {m.optimizer} steps")
    cal = record.get("energy_calibration")
    lines.append("- No-object check: " + (f"calibrated on {cal.get('n', 'held-out')} real "
                                          "images" if isinstance(cal, Mapping) else
                                          "none recorded (every image gets an answer)"))
    metrics = record.get("metrics") or {}
    rows = _metric_rows(metrics)
    if rows:
        where = record.get("metrics_command", "")
        n = record.get("metrics_n")
        lines += ["", "## Metrics", "", f"Measured by `{where}`" + (f" (n = {n})" if n else "")
                  + "; value ± standard error.", "", "| metric | value |", "|---|---|", *rows]
    if known.get("limits"):
        lines += ["", "## Known limits", "", known["limits"]]
    return "\n".join(lines) + "\n"
