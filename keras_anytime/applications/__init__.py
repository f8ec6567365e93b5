"""Builders of anytime networks, in the keras.applications style."""

from keras_anytime.applications.densenet import AnytimeDenseNet
from keras_anytime.applications.eann import EANN, eann_members, freeze_members_before
from keras_anytime.applications.msdnet import MSDNET_CONFIGS, MSDNet
from keras_anytime.applications.resnet import AnytimeResNet

__all__ = [
    "AnytimeDenseNet",
    "AnytimeResNet",
    "EANN",
    "MSDNET_CONFIGS",
    "MSDNet",
    "eann_members",
    "freeze_members_before",
]
