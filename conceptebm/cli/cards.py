"""``conceptebm models``: the shipped models, one line each; ``models show SPEC``: a model's card.

    conceptebm models                       # every shipped model and what it is for
    conceptebm models show position_late    # its card: concept, training, settings, metrics
    conceptebm models show runs/mine        # the card of a model you trained (a run folder)

The card is written from the model's record (:func:`conceptebm.pretrained.cards.model_card`).
"""

from __future__ import annotations

import argparse

from conceptebm.cli import validate
from conceptebm.cli.models import load_model
from conceptebm.cli.validate import CommandError

__all__ = ["register"]


def _list(args: argparse.Namespace) -> int:
    from conceptebm import pretrained
    from conceptebm.checkpoints import CheckpointError, read_record
    from conceptebm.pretrained.cards import summary

    print(f"{'name':<22} {'concept':<9} intended use")
    for name in pretrained.available():
        try:  # the header's record is all a line needs: no weights are loaded
            record = read_record(pretrained.checkpoint_path(name))
        except CheckpointError as err:
            raise CommandError(f"cannot read shipped model {name}: {err}; reinstall "
                               "conceptebm") from None
        print(summary(record, name))
    print("\nconceptebm models show NAME prints a model's card (training, settings, metrics, "
          "limits).")
    return 0


def _show(args: argparse.Namespace) -> int:
    from conceptebm import pretrained
    from conceptebm.pretrained.cards import model_card

    model = load_model(args.spec, None)
    name = args.spec if args.spec in pretrained.NAMES else None
    print(model_card(model, name=name), end="")
    return 0


def register(sub) -> None:
    p = sub.add_parser("models", help="list the shipped models; show a model's card",
                       description=__doc__.split("\n\n", 1)[1],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(func=_list)
    from conceptebm.cli import Parser  # one-line errors, exit 2

    actions = p.add_subparsers(dest="action", metavar="action", parser_class=Parser)
    show = actions.add_parser("show", help="print a model's card")
    show.add_argument("spec", metavar="SPEC", type=validate.text("a model name or path"),
                      help="a shipped model name, a checkpoint file or a training run's folder")
    show.set_defaults(func=_show)
