"""Schemes: every one behind :class:`~noiseveil.schemes.base.Scheme` (capabilities, keys,
encrypt, decrypt, payload, train).

The schemes know nothing of the model zoo; ``noiseveil.zoo.load_scheme("ric-cifar10")`` (also
``noiseveil.load_scheme``) returns a ready scheme with its shipped networks and cloud classifier.
"""

from __future__ import annotations

from noiseveil.schemes.avp import AVPScheme
from noiseveil.schemes.base import (
    AuthenticationError,
    Capabilities,
    Ciphertext,
    EncryptionError,
    Scheme,
    SchemeError,
    TrainedScheme,
    TrainingPlan,
)
from noiseveil.schemes.etc import EtCScheme
from noiseveil.schemes.ric import PRESETS, RIC, RICConfig, RICScheme
from noiseveil.schemes.ric_lossless import LosslessRICScheme
from noiseveil.schemes.transnet import TransNetScheme

__all__ = [
    "AVPScheme",
    "AuthenticationError",
    "Capabilities",
    "Ciphertext",
    "EncryptionError",
    "EtCScheme",
    "LosslessRICScheme",
    "PRESETS",
    "RIC",
    "RICConfig",
    "RICScheme",
    "Scheme",
    "SchemeError",
    "TrainedScheme",
    "TrainingPlan",
    "TransNetScheme",
]
