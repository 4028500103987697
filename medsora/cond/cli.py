"""``python -m medsora.sample`` options for clinical control: ``--attr``, ``--guide-attr``, ``--image``,
``--image-frame`` (parsed here so that the entry point stays small)."""
from __future__ import annotations

import argparse

__all__ = ["add_control_arguments", "control_from_args"]


def add_control_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the control options to the sampling parser."""
    group = parser.add_argument_group("clinical control")
    group.add_argument("--attr", action="append", default=[], metavar="NAME=VALUE",
                       help="an attribute of cond.attributes, e.g. --attr heart_rate=60 --attr pathology=polyp "
                            "(repeatable; absent attributes take their null embedding)")
    group.add_argument("--guide-attr", action="append", default=None, metavar="NAME",
                       help="guide on this attribute alone: the unconditional branch of --cfg drops only it (repeatable)")
    group.add_argument("--image", default=None, metavar="PATH",
                       help="image-to-video: a PNG/JPEG, a DICOM or a video file (its first frame), preprocessed "
                            "like the training data; every clip starts from it (needs a cond.first_frame model)")
    group.add_argument("--image-frame", type=int, default=0, metavar="K",
                       help="frame K of a multi-frame --image (DICOM cine, video); default 0")


def control_from_args(args: argparse.Namespace, module) -> dict:
    """Keyword arguments of ``DiffusionModule.generate`` from the parsed options.

    Raises:
        ValueError / FileNotFoundError: an unknown attribute or invalid value (naming the allowed ones),
            an image the model cannot take, or an unreadable image.
    """
    from medsora.cond.attribute_spec import parse_assignments

    specs = module.cond_encoder.attribute_specs if module.cond_encoder is not None else ()
    control: dict = {}
    if args.attr:
        if not specs:
            raise ValueError("--attr: this model has no attributes (it was trained without cond.attributes)")
        control["attributes"] = parse_assignments(specs, args.attr)
    if args.guide_attr:
        control["guide_attributes"] = list(args.guide_attr)
    if args.image_frame != 0 and args.image is None:
        raise ValueError("--image-frame needs --image")
    if args.image is not None:
        if not module.cfg.cond.first_frame:
            raise ValueError("--image: this model was not trained for image-to-video (cond.first_frame is off)")
        from medsora.cond.first_frame import load_first_frame

        control["first_frames"] = load_first_frame(args.image, module.cfg.data, args.image_frame)
    return control
