"""The one table of model families: the name a user types (`train --family resnet`, the
tuner's `family`) and the builder in `keras_anytime.applications` that makes it (the
zoo manifest's `builder`). The CLI, the tuner and the zoo all resolve names here.

Importing this module imports no Keras, so the CLI's `--help` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable

FAMILIES = {
    "resnet": "AnytimeResNet",
    "densenet": "AnytimeDenseNet",
    "msdnet": "MSDNet",
    "eann": "EANN",
}


def builder(name: str) -> Callable:
    """The builder function for a family name ("resnet") or a builder name
    ("AnytimeResNet")."""
    builder_name = FAMILIES.get(name, name)
    if builder_name not in FAMILIES.values():
        raise ValueError(
            f"Unknown model family {name!r}: use one of {sorted(FAMILIES)} (or the builder "
            f"names {sorted(FAMILIES.values())})."
        )
    from keras_anytime import applications

    return getattr(applications, builder_name)
