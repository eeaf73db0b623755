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

from noiseveil.classifiers import Normalize, build_classifier
from noiseveil.classifiers.preprocessing import PRESETS as PREPROCESSING_PRESETS
from noiseveil.classifiers.preprocessing import PreprocessedClassifier, Preprocessing
from noiseveil.crypto.keys import Key, KeyFileError, NoKey, SecretKey, load_key
from noiseveil.data import DataError, ImageDataset, load_dataset, load_image_folder, read_image
from noiseveil.exceptions import NoiseveilError
from noiseveil.io.png import (
    CiphertextFileError,
    ciphertext_from_bytes,
    ciphertext_to_bytes,
    read_ciphertext,
    write_ciphertext,
)
from noiseveil.pipeline import Report, classify_files, decrypt_files, encrypt_files, plan, plan_listed
from noiseveil.schemes import (
    PRESETS,
    RIC,
    AuthenticationError,
    Capabilities,
    Ciphertext,
    EncryptionError,
    LosslessRICScheme,
    RICConfig,
    RICScheme,
    Scheme,
    SchemeError,
)
from noiseveil.schemes.base import ciphertext_tensor
from noiseveil.zoo import ZooError, add_classifier, load_classifier, load_scheme, shipped_schemes

__version__ = "0.1.0"

__all__ = [
    "PREPROCESSING_PRESETS",
    "PRESETS",
    "PreprocessedClassifier",
    "Preprocessing",
    "add_classifier",
    "RIC",
    "AuthenticationError",
    "EncryptionError",
    "Ciphertext",
    "CiphertextFileError",
    "DataError",
    "ImageDataset",
    "Capabilities",
    "Key",
    "KeyFileError",
    "NoKey",
    "NoiseveilError",
    "Normalize",
    "RICConfig",
    "LosslessRICScheme",
    "RICScheme",
    "Report",
    "Scheme",
    "SchemeError",
    "SecretKey",
    "ZooError",
    "build_classifier",
    "ciphertext_tensor",
    "classify_files",
    "decrypt_files",
    "encrypt_files",
    "load_classifier",
    "load_dataset",
    "load_image_folder",
    "load_key",
    "load_scheme",
    "plan",
    "plan_listed",
    "read_ciphertext",
    "ciphertext_from_bytes",
    "ciphertext_to_bytes",
    "read_image",
    "shipped_schemes",
    "write_ciphertext",
]
