"""noiseveil: privacy-preserving image classification with recoverable encryption.

Python API (the CLI is a thin layer over it)::

    import noiseveil as nv
    ric = nv.load_scheme("ric-cifar10")           # shipped RIC + its cloud classifier
    key = ric.keygen()                            # or nv.load_key("my.key"); key.save("my.key")
    ric.capabilities                              # recovers? exact? key kind? cloud model?
    cts = ric.encrypt(images, key)                # images: float (N, C, H, W) in [0, 1]
    labels = ric.cloud_classifier()(nv.ciphertext_tensor(cts)).argmax(1)
    recovered = ric.decrypt(cts, key)             # verifies the HMAC tag first
    nv.write_ciphertext("x.png", cts[0]); ct = nv.read_ciphertext("x.png")

    # your own classifier (a TorchScript/ONNX file or an nn.Module) and photos of any size:
    pipeline = nv.Preprocessing(**nv.PREPROCESSING_PRESETS["imagenet"])
    nv.add_classifier("my-net", timm_model, pipeline, class_names)  # -> ("my-net", "ric-my-net")
    ric = nv.load_scheme("ric-my-net"); cts = ric.encrypt(photo[None], key)
    photos = ric.decrypt_images(cts, key)          # uint8 (H, W, C) each, bit for bit
"""

import importlib
from typing import Any

# Every public name, by the module it comes from. They are imported on first use (PEP 562), so
# that `import noiseveil` (and so `noiseveil --help`, whose parser lives in the package) does
# not pay for torch; `import noiseveil as nv; nv.load_scheme(...)` reads as before.
_EXPORTS = {
    "noiseveil.classifiers": ["Normalize", "build_classifier"],
    "noiseveil.classifiers.preprocessing": ["PreprocessedClassifier", "Preprocessing"],
    "noiseveil.crypto.keys": ["Key", "KeyFileError", "NoKey", "SecretKey", "load_key"],
    "noiseveil.data": ["DataError", "ImageDataset", "load_dataset", "load_image_folder", "read_image"],
    "noiseveil.exceptions": ["NoiseveilError"],
    "noiseveil.io.png": [
        "CiphertextFileError",
        "ciphertext_from_bytes",
        "ciphertext_to_bytes",
        "read_ciphertext",
        "write_ciphertext",
    ],
    "noiseveil.pipeline": [
        "Report",
        "classify_files",
        "decrypt_files",
        "encrypt_files",
        "plan",
        "plan_listed",
    ],
    "noiseveil.schemes": [
        "PRESETS",
        "RIC",
        "AVPScheme",
        "AuthenticationError",
        "Capabilities",
        "Ciphertext",
        "EncryptionError",
        "EtCScheme",
        "LosslessRICScheme",
        "RICConfig",
        "RICScheme",
        "Scheme",
        "SchemeError",
        "TransNetScheme",
    ],
    "noiseveil.schemes.base": ["ciphertext_tensor"],
    "noiseveil.zoo": ["ZooError", "add_classifier", "load_classifier", "load_scheme", "shipped_schemes"],
}
# Public names that differ from their module's (the input pipelines' presets beside RIC's).
_ALIASES = {"PREPROCESSING_PRESETS": ("noiseveil.classifiers.preprocessing", "PRESETS")}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
_MODULE_OF.update({alias: module for alias, (module, _) in _ALIASES.items()})


def __getattr__(name: str) -> Any:
    """A public name, imported from its module on first use; a subpackage (``nv.data``) too."""
    if name in _MODULE_OF:
        value = getattr(importlib.import_module(_MODULE_OF[name]), _ALIASES.get(name, (None, name))[1])
    else:
        try:
            value = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_MODULE_OF])


__version__ = "0.1.0"

__all__ = list(_MODULE_OF)
