"""The cloud's plaintext classifiers: architectures, training and the shipped weights."""

from noiseveil.classifiers.architectures import (
    ARCHITECTURES,
    MnistCNN,
    Normalize,
    ResNet,
    SvhnCNN,
    build_classifier,
)

__all__ = ["ARCHITECTURES", "MnistCNN", "Normalize", "ResNet", "SvhnCNN", "build_classifier"]
