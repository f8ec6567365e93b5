"""Builders of anytime networks, in the keras.applications style: one generic builder
per family (`AnytimeResNet`, `AnytimeDenseNet`, `MSDNet`, `EANN`) and thin named
variants of the common configurations (`AnytimeResNet56`, `MSDNetCIFAR`, ...)."""

from keras_anytime.applications.densenet import AnytimeDenseNet, AnytimeDenseNetBC100
from keras_anytime.applications.eann import EANN, eann_members, freeze_members_before
from keras_anytime.applications.msdnet import MSDNET_CONFIGS, MSDNet, MSDNetCIFAR, MSDNetImageNet
from keras_anytime.applications.resnet import (
    AnytimeResNet,
    AnytimeResNet20,
    AnytimeResNet32,
    AnytimeResNet56,
    AnytimeResNet110,
)

__all__ = [
    "AnytimeDenseNet",
    "AnytimeDenseNetBC100",
    "AnytimeResNet",
    "AnytimeResNet20",
    "AnytimeResNet32",
    "AnytimeResNet56",
    "AnytimeResNet110",
    "EANN",
    "MSDNET_CONFIGS",
    "MSDNet",
    "MSDNetCIFAR",
    "MSDNetImageNet",
    "eann_members",
    "freeze_members_before",
]
