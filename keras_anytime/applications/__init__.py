"""Builders of anytime networks, in the keras.applications style."""

from keras_anytime.applications.densenet import AnytimeDenseNet
from keras_anytime.applications.msdnet import MSDNET_CONFIGS, MSDNet
from keras_anytime.applications.resnet import AnytimeResNet

__all__ = ["AnytimeDenseNet", "AnytimeResNet", "MSDNET_CONFIGS", "MSDNet"]
