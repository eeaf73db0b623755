"""Schemes: every one behind :class:`~noiseveil.schemes.base.Scheme` (keygen, encrypt, decrypt, fit).

``load_scheme("ric-cifar10")`` returns a ready scheme with its shipped networks and the cloud
classifier they were trained against.
"""

from __future__ import annotations

from torch import nn

from noiseveil.schemes.base import AuthenticationError, Ciphertext, EncryptionError, Scheme, SchemeError
from noiseveil.schemes.etc import EtCScheme
from noiseveil.schemes.ric import PRESETS, RIC, RICConfig, RICScheme
from noiseveil.schemes.ric_lossless import LosslessRICScheme
from noiseveil.zoo import ZooError, load_payload, read_manifest

SCHEMES: dict[str, type[Scheme]] = {"ric": RICScheme, "ric-lossless": LosslessRICScheme, "etc": EtCScheme}


def shipped_schemes() -> list[str]:
    """Model ids of the shipped scheme models (not classifiers)."""
    return sorted(k for k, v in read_manifest().items() if v.get("kind") == "scheme")


def load_scheme(
    model_id: str, classifier: nn.Module | None = None, classifier_id: str | None = None
) -> Scheme:
    """A shipped scheme model by id; ``classifier`` replaces the cloud model it was trained with."""
    payload = load_payload(model_id)
    scheme_name = payload.get("scheme")
    if scheme_name not in SCHEMES:
        kind = payload.get("kind") or read_manifest().get(model_id, {}).get("kind", "model of no known kind")
        raise ZooError(f"{model_id!r} is a {kind}, not a scheme model (see 'noiseveil models')")
    scheme = SCHEMES[scheme_name].from_payload(payload, model_id, classifier, classifier_id)
    promised = read_manifest()[model_id].get("promised_psnr")
    if promised is not None:  # a learned decoder's per-image floor, measured when it shipped
        scheme.promised_psnr = float(promised)
    return scheme


__all__ = [
    "AuthenticationError",
    "Ciphertext",
    "EncryptionError",
    "EtCScheme",
    "LosslessRICScheme",
    "PRESETS",
    "RIC",
    "RICConfig",
    "RICScheme",
    "SCHEMES",
    "Scheme",
    "SchemeError",
    "load_scheme",
    "shipped_schemes",
]
