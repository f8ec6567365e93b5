"""The one table of model families: the name a user types (`train --family resnet`, the
tuner's `family`), the builder in `keras_anytime.applications` that makes it (the zoo
manifest's `builder`), the builder arguments `keras-anytime train` sets and the tuner's
search space. The CLI, `training`, the tuner and the zoo all read families here.

Importing this module imports no Keras, so the CLI's `--help` stays fast.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["FAMILIES", "Family", "Option", "builder", "family"]


@dataclass(frozen=True)
class Option:
    """A builder argument that `keras-anytime train` sets from its command line.

    Args:
        name: the builder's argument, e.g. "depth"; "config" names an entry of the
            family's `named_configs` instead.
        default: its value when the command line leaves it out (None: the builder's own).
        help: the command line's help text.
        flag: the command-line flag. Defaults to None (`--` and `name` with dashes).
        type: how the command line parses it, int or str. Defaults to int.
    """

    name: str
    default: Any
    help: str
    flag: str | None = None
    type: type = int

    @property
    def cli_flag(self) -> str:
        """The command-line flag: `flag`, else `--` and `name` with dashes."""
        return self.flag or "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class Family:
    """A model family.

    Args:
        builder: the builder's name in `keras_anytime.applications`.
        train_options: the builder arguments `keras-anytime train` sets. Defaults to None:
            `train` cannot build the family (an EANN trains member by member).
        search_space: the tuner's space, {builder argument: ("choice", [values]) or
            ("int", low, high)}. Defaults to None: the tuner does not search the family.
        named_configs: "module:ATTRIBUTE" of a dict of named builder configurations, one
            of which the option "config" picks; the other options override its entries.
            Defaults to None (no named configurations).
    """

    builder: str
    train_options: tuple[Option, ...] | None = None
    search_space: Mapping[str, tuple] | None = None
    named_configs: str | None = None

    @property
    def defaults(self) -> dict[str, Any]:
        """`train`'s model arguments and their defaults."""
        return {o.name: o.default for o in self.train_options or ()}

    @property
    def trainable(self) -> bool:
        """Whether `keras-anytime train` can build the family."""
        return self.train_options is not None

    def builder_kwargs(self, model: Mapping[str, Any]) -> dict[str, Any]:
        """The builder's keyword arguments for `train`'s model arguments.

        Args:
            model: {option name: value}; None or absent: the option's default.

        Raises:
            ValueError: an option the family does not take, or an unknown named
                configuration.
        """
        defaults = self.defaults
        unknown = set(model) - set(defaults)
        if unknown:
            raise ValueError(
                f"{self.builder} takes no model argument {sorted(unknown)} in training: it "
                f"takes {sorted(defaults)}."
            )
        values = {k: defaults[k] if model.get(k) is None else model[k] for k in defaults}
        if self.named_configs is None:
            return {k: v for k, v in values.items() if v is not None}
        module, attribute = self.named_configs.split(":")
        configs = getattr(importlib.import_module(module), attribute)
        name = values.pop("config")
        if name not in configs:
            raise ValueError(
                f"Unknown {self.builder} configuration {name!r}: use one of {sorted(configs)}."
            )
        return {**configs[name], **{k: v for k, v in values.items() if v is not None}}


_EXIT_EVERY = Option("exit_every", 1, "an exit after every N units (resnet, densenet)")

FAMILIES: dict[str, Family] = {
    "resnet": Family(
        "AnytimeResNet",
        train_options=(
            Option("depth", 20, "resnet: 20; densenet: 100"),
            Option("width", None, "resnet base width (16 CIFAR)"),
            _EXIT_EVERY,
        ),
        search_space={
            "depth": ("choice", [8, 14, 20]),
            "width": ("choice", [8, 16]),
            "exit_every": ("int", 1, 3),
        },
    ),
    "densenet": Family(
        "AnytimeDenseNet",
        train_options=(
            Option("depth", 100, "resnet: 20; densenet: 100"),
            Option("growth_rate", None, "densenet (12 CIFAR)"),
            _EXIT_EVERY,
        ),
        search_space={
            "depth": ("choice", [16, 22, 28]),
            "growth_rate": ("choice", [6, 12]),
            "exit_every": ("int", 1, 4),
        },
    ),
    "msdnet": Family(
        "MSDNet",
        train_options=(
            Option(
                "config",
                "cifar_anytime",
                "msdnet: MSDNET_CONFIGS key",
                flag="--msdnet-config",
                type=str,
            ),
            Option("n_blocks", None, "msdnet: override n_blocks"),
        ),
        search_space={"n_blocks": ("int", 2, 5), "n_channels": ("choice", [8, 16])},
        named_configs="keras_anytime.applications.msdnet:MSDNET_CONFIGS",
    ),
    "eann": Family("EANN"),
}


def family(name: str) -> Family:
    """The `Family` of a family name or a builder name.

    Args:
        name: a key of `FAMILIES` ("resnet") or a builder's name ("AnytimeResNet").

    Raises:
        ValueError: an unknown name.
    """
    if name in FAMILIES:
        return FAMILIES[name]
    for found in FAMILIES.values():
        if found.builder == name:
            return found
    raise ValueError(
        f"Unknown model family {name!r}: use one of {sorted(FAMILIES)} (or the builder "
        f"names {sorted(f.builder for f in FAMILIES.values())})."
    )


def builder(name: str) -> Callable:
    """The builder function of a family name or a builder name.

    Args:
        name: a key of `FAMILIES` ("resnet") or a builder's name ("AnytimeResNet").
    """
    from keras_anytime import applications

    return getattr(applications, family(name).builder)
