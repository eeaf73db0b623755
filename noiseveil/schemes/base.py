"""The interface every scheme implements (the authenticated ciphertext they all produce is
:class:`noiseveil.io.png.Ciphertext`, beside its PNG file).

A scheme turns plaintext images into ciphertext *images* that a cloud classifier reads,
and back. What differs between RIC, EtC, AVP and TransNet is only how the pixels are made;
everything around them is shared here:

    images [0,1] --encrypt(key)--> Ciphertext(pixels uint8, public fields) --seal--> tag
    Ciphertext --verify(key)--> decrypt(key) --> images [0,1]

The tag is HMAC-SHA256 (key derived from the secret key) over the pixels and every
metadata field, so a wrong key or a modified file is rejected before decryption runs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeAlias

import numpy as np
import torch
from torch import nn

from noiseveil.crypto.keys import KEY_KINDS, TAG_BYTES, Key, KeyFileError, load_key
from noiseveil.data.tensors import to_uint8
from noiseveil.exceptions import AuthenticationError as AuthenticationError  # re-exported
from noiseveil.exceptions import NoiseveilError, SchemeError
from noiseveil.io.png import Ciphertext, ciphertext_from_bytes, ciphertext_to_bytes

if TYPE_CHECKING:
    from noiseveil.data import ImageDataset

# Sides of the images a model of any size takes: CIFAR-sized to beyond 4000x3000 photos; the
# upper bound is WebP's (lossless RIC compresses each image into its own ciphertext).
MIN_SIDE, MAX_SIDE = 32, 16383

# Optional public fields every scheme may set: what decryption promises for this image.
RECOVERY_FIELD, RECOVERY_PSNR_FIELD = "recovery", "recovery_psnr"  # "exact" | "lossy" (+ PSNR dB)

# A scheme model's persisted form: plain tensors, numbers and strings (torch.save-able).
Payload: TypeAlias = dict[str, Any]
# The cloud's classifier, or how to load it when first needed (decryption may never need it).
# The registry (noiseveil.zoo) supplies it; schemes never load models by id themselves.
CloudModel: TypeAlias = nn.Module | Callable[[], nn.Module]


@dataclass(frozen=True)
class Capabilities:
    """What a scheme can do, so that generic code (CLI, pipeline, evaluation, attacks, reports)
    asks for capabilities and never for a scheme's name. How the four schemes fit:

    ========  ========  =====  ===================  ==========================  ==============
    scheme    recovers  exact  key                  cloud model                 key bound to it
    ========  ========  =====  ===================  ==========================  ==============
    RIC       yes       yes*   256-bit secret       the plaintext classifier    no
    EtC       yes       yes    256-bit secret       trained on ciphertexts      yes
    AVP       yes       no     trained generator    the plaintext classifier    no
    TransNet  no        -      none                 trained with the protocol   -
    ========  ========  =====  ===================  ==========================  ==============

    (*) the lossless preset; the learned presets recover to a stated PSNR.
    """

    recovers: bool = True  # decrypt gives the images back
    exact: bool = True  # ... bit for bit (else to the promised PSNR)
    key: str | None = "secret-256"  # the key material: "secret-256", "generator" (AVP) or None
    cloud_model: str = "plaintext"  # "plaintext" (labels must be kept), "ciphertexts", "protocol"
    key_bound_to_model: bool = False  # the cloud model was trained for one key (EtC)

    @property
    def keeps_plaintext_label(self) -> bool:
        """The cloud runs the unmodified plaintext classifier, so a ciphertext must get the
        plaintext's label (the scheme's promise, checked by every encryption)."""
        return self.cloud_model == "plaintext"


def resolve_classifier(classifier: CloudModel) -> nn.Module:
    """The cloud model itself, loading it now if it came as a loader."""
    return classifier if isinstance(classifier, nn.Module) else classifier()


def plaintext_cloud_fields(
    payload: Payload, model_id: str, classifier: CloudModel | None, classifier_id: str | None
) -> dict[str, Any]:
    """What every scheme on an unmodified plaintext classifier rebuilds alike from a payload:
    the classifier (or its loader), the model id, the image shape and the classifier's id."""
    if classifier is None:
        raise SchemeError(f"model {model_id} needs the plaintext classifier it was made for")
    return {
        "classifier": classifier,
        "model_id": model_id,
        "image_shape": None if payload["image_shape"] is None else tuple(payload["image_shape"]),
        "classifier_id": classifier_id or payload["classifier_id"],
    }


@dataclass(frozen=True)
class TrainingPlan:
    """What ``noiseveil train`` asks a scheme to train: a zoo card's settings and the user's
    overrides. Each scheme reads what applies to it (:meth:`Scheme.train`) and refuses the rest."""

    model_id: str  # the id the trained model ships under
    image_shape: tuple[int, int, int]
    classifier_id: str  # the cloud model trained against (RIC), or the plaintext twin (EtC)
    classifier_recipe: Mapping[str, Any] = field(default_factory=dict)  # its "arch", "config", "train"
    preset: str = ""  # a scheme's named network preset (RIC: "masked", "paper", "lossless")
    preset_override: bool = False  # the user asked for ``preset`` (not the card's own)
    config: Mapping[str, Any] = field(default_factory=dict)  # the scheme's own settings
    train: Mapping[str, Any] = field(default_factory=dict)  # its training settings
    nae: Mapping[str, Any] = field(default_factory=dict)  # NAE settings, for schemes that make NAEs
    budget: int | None = None  # steps or epochs (as the scheme counts them), overriding ``train``
    key: Key | None = None  # the key a key-bound cloud model is trained for (EtC)
    cloud_url: str | None = None  # a protocol-trained scheme's cloud over HTTP (default: in-process)
    cloud_token: str | None = None  # the API token that cloud asks for, if any


@dataclass
class TrainedScheme:
    """A freshly trained scheme, its training report (for results/training/<id>.json) and
    the measured figures its zoo manifest entry records."""

    scheme: Scheme
    report: dict[str, Any]
    manifest: dict[str, Any] = field(default_factory=dict)


class EncryptionError(SchemeError):
    """An image whose ciphertext failed its own check (it would not decrypt to the promised
    fidelity, or the cloud would label it differently): no ciphertext is produced for it."""


@dataclass(frozen=True)
class Encrypted:
    """What :meth:`Scheme.encrypt_kept` gives: the ciphertexts of the images that passed their
    check, which images those are (indices into the batch) and why the others have none."""

    ciphertexts: list[Ciphertext]
    kept: list[int]
    refused: dict[int, str]

    @classmethod
    def of(cls, results: Sequence[Ciphertext | EncryptionError], offset: int = 0) -> Encrypted:
        """From :meth:`Scheme.encrypt_each`'s results (of the images from ``offset`` on)."""
        ok = [(offset + i, r) for i, r in enumerate(results) if not isinstance(r, EncryptionError)]
        refused = {offset + i: str(r) for i, r in enumerate(results) if isinstance(r, EncryptionError)}
        return cls([r for _, r in ok], [i for i, _ in ok], refused)  # type: ignore[misc]

    def __add__(self, other: Encrypted) -> Encrypted:
        """Two batches, the second's indices already past the first's (see ``offset``)."""
        return Encrypted(
            self.ciphertexts + other.ciphertexts, self.kept + other.kept, {**self.refused, **other.refused}
        )


@dataclass(frozen=True)
class SealedPayload:
    """The bytes a ciphertext carries sealed under an AEAD (ChaCha20-Poly1305), with what they
    were sealed for. Public: anyone holding the file reads them; only the key opens them."""

    nonce: bytes
    use: str  # the key-derivation label the payload was sealed under
    sealed: bytes
    aad: bytes  # the associated data the tag also covers
    shape: tuple[int, int, int]  # (H, W, C) of the ciphertext that carries them


def accuracy_figure(entry: Mapping[str, Any]) -> str:
    """A zoo entry's measured test accuracy, as ``noiseveil models`` shows it."""
    return f"test acc {100 * entry['test_accuracy']:.2f}%"


def same_shape_groups(shapes: Sequence[tuple[int, ...]]) -> list[list[int]]:
    """Indices of equal shapes, in order of first appearance (a batch needs one size)."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, shape in enumerate(shapes):
        groups.setdefault(tuple(shape), []).append(i)
    return list(groups.values())


def ciphertext_tensor(ciphertexts: Sequence[Ciphertext]) -> torch.Tensor:
    """Ciphertext pixels as a float (N, C, H, W) batch in [0, 1]: exactly what the cloud classifies."""
    pixels = torch.from_numpy(np.stack([ct.pixels for ct in ciphertexts])).permute(0, 3, 1, 2)
    return pixels.float() / 255.0


class Scheme(ABC):
    """A privacy-preserving classification scheme.

    Subclasses implement :meth:`_encrypt` and :meth:`_decrypt` on float tensors and say which
    classifier the cloud runs on their ciphertexts; this class adds shape checks, nonces,
    sealing and verification so all schemes behave alike in the CLI, evaluation and attacks.
    """

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    # The worst PSNR (dB) a decryption may give unless the ciphertext states a lower one
    # (a "lossy" recovery field); inf = bit-exact.
    promised_psnr: float = float("inf")
    model_id: str
    # (H, W, C) the scheme's models accept; None: images of any size from MIN_SIDE to MAX_SIDE
    # pixels a side, grey or RGB (a model on a classifier card that resizes its input itself).
    image_shape: tuple[int, int, int] | None
    # Write the key's public fingerprint into each ciphertext's header. It lets anyone who sees
    # two files tell whether one key made both (linking them to one data provider) and lets
    # decryption name a wrong key at once; turn it off (`noiseveil encrypt --no-key-id`) to
    # stop the linking: a wrong key is then told by its failed tag.
    publish_key_id: bool = True

    @property
    def keeps_plaintext_label(self) -> bool:
        return self.capabilities.keeps_plaintext_label

    @property
    def nae_settings(self) -> dict[str, Any] | None:
        """The NAE attack settings this scheme encrypts with (what an evaluation records), or
        None for a scheme that makes no NAE."""
        return None

    @classmethod
    def figure(cls, entry: Mapping[str, Any]) -> str:
        """The figure that represents one of this scheme's models in the zoo (``noiseveil
        models``), read from the manifest entry its training recorded (``TrainedScheme.manifest``):
        the cloud's measured accuracy where training measured one (EtC, TransNet), else the
        classifier the model was made for. Schemes whose models promise more say so."""
        if "test_accuracy" in entry:
            return accuracy_figure(entry)
        return f"(classifier {entry.get('classifier_id', '-')})"

    def with_nae(self, **changes: object) -> Scheme:
        """This scheme with other NAE attack settings (schemes that make NAEs override it)."""
        raise SchemeError(f"model {self.model_id} ({self.name}) makes no NAE: NAE settings do not apply")

    def _changed_nae(self, settings: Any, changes: Mapping[str, object]) -> Any:
        """``settings`` (a dataclass) with ``changes``, or a SchemeError naming any it lacks."""
        unknown = sorted(set(changes) - {f.name for f in fields(settings)})
        if unknown:
            raise SchemeError(f"model {self.model_id} ({self.name}) has no NAE setting {', '.join(unknown)}")
        return replace(settings, **changes)

    def encryption_stats(self) -> Counter:
        """Counters since construction: images encrypted, first tries that failed the scheme's
        own criterion, retries (schemes that never retry count nothing)."""
        return self.__dict__.setdefault("stats", Counter())

    # -- keys ------------------------------------------------------------------------------
    @property
    def key_type(self) -> type[Key]:
        """The class of this scheme's keys (from ``capabilities.key``)."""
        return KEY_KINDS[self.capabilities.key]

    def keygen(
        self,
        seed: bytes | None = None,
        *,
        progress: bool = False,
        checkpoint: Path | None = None,
        budget: int | None = None,
    ) -> Key:
        """A new key for this scheme; ``seed`` makes it reproducible (experiments, attacks).
        Schemes whose keys are trained (AVP) show ``progress``, resume from ``checkpoint`` and
        take ``budget`` training steps instead of their own; keys of random bits ignore them."""
        return self.key_type.generate(seed)

    def demo_key(self) -> Key:
        """A key that works at once, for demos and tests: the bound key (EtC), a PUBLIC key
        shipped with the model where keys take minutes to make (AVP), else a fresh one."""
        return self.bound_key if self.bound_key is not None else self.keygen()

    def load_key(self, path: str | Path) -> Key:
        """Read a key file and check that this scheme can use it (one-line errors)."""
        key = load_key(path)
        self.check_key(key)
        return key

    @property
    def bound_key(self) -> Key | None:
        """The one key the cloud model works with, if it is bound to one (EtC), else None (RIC)."""
        return None

    def check_key_kind(self, key: Key) -> None:
        """Raise a one-line error unless ``key`` is of the kind this scheme uses."""
        if not isinstance(key, self.key_type):
            if key.kind == "none":
                raise KeyFileError(
                    f"model {self.model_id} ({self.name}) needs a {self.key_type.kind} key: -k KEY"
                )
            raise KeyFileError(
                f"model {self.model_id} ({self.name}) needs a {self.key_type.kind} key, not a {key.kind} one"
            )

    def check_key(self, key: Key) -> None:
        """Raise a one-line error if this scheme cannot use ``key``: a key of another kind, or
        (a usability guard for deployments) not the key the cloud model was trained for.

        The cipher itself encrypts with any key of its kind, which attacks rely on."""
        self.check_key_kind(key)
        bound = self.bound_key
        if bound is not None and key.key_id != bound.key_id:
            raise SchemeError(
                f"model {self.model_id} classifies images of key {bound.key_id} only, not of key "
                f"{key.key_id}: use `noiseveil keygen --model {self.model_id} --demo PATH` "
                "(its public demo key) or train a model for your key"
            )

    # -- what each scheme implements -------------------------------------------------------
    @abstractmethod
    def cloud_classifier(self) -> nn.Module:
        """The model the cloud applies to ciphertexts (RIC: the unmodified plaintext model)."""

    @abstractmethod
    def _encrypt(
        self, images: torch.Tensor, key: Key, labels: torch.Tensor | None = None
    ) -> list[tuple[np.ndarray, dict[str, str]]]:
        """Encrypt a batch (N, C, H, W) in [0, 1]; return pixels and public fields per image.
        ``labels`` are the plaintexts' labels (:meth:`plaintext_labels`) where the caller has
        them: a scheme that needs them uses these rather than classifying again."""

    @abstractmethod
    def _decrypt(self, pixels: torch.Tensor, fields: Sequence[dict[str, str]], key: Key) -> torch.Tensor:
        """Decrypt verified ciphertext pixels (N, C, H, W) in [0, 1] with their fields."""

    @abstractmethod
    def payload(self, extra: Payload | None = None) -> Payload:
        """Everything :meth:`from_payload` needs to rebuild this model (what the zoo ships)."""

    @classmethod
    @abstractmethod
    def from_payload(
        cls, payload: Payload, model_id: str, classifier: CloudModel | None, classifier_id: str | None
    ) -> Scheme:
        """Rebuild a model from its payload. ``classifier`` is the cloud model it works with
        (None: the one inside the payload, for schemes that ship their cloud model)."""

    @classmethod
    @abstractmethod
    def train(
        cls, plan: TrainingPlan, data: ImageDataset, classifier: CloudModel, checkpoint: Path
    ) -> TrainedScheme:
        """Train what the scheme trains (RIC: its networks against ``classifier``; EtC: a cloud
        model on its ciphertexts; AVP: the generator key; TransNet: the transformation network
        with the cloud, through its protocol), resumably from ``checkpoint``."""

    # -- shared behaviour ------------------------------------------------------------------
    def check_shape(self, shape: Sequence[int], what: str = "image") -> None:
        """``shape`` is (H, W, C); raise a one-line error if the models cannot take it."""
        if self.image_shape is None:
            h, w, c = shape
            if c not in (1, 3) or min(h, w) < MIN_SIDE or max(h, w) > MAX_SIDE:
                raise SchemeError(
                    f"{what} is {h}x{w}x{c}, model {self.model_id} takes grey or RGB images of "
                    f"{MIN_SIDE} to {MAX_SIDE} pixels a side (HxWxC)"
                )
            return
        if tuple(shape) != tuple(self.image_shape):
            h, w, c = self.image_shape
            got = "x".join(str(s) for s in shape)
            raise SchemeError(f"{what} is {got}, model {self.model_id} takes {h}x{w}x{c} (HxWxC)")

    def encrypt(self, images: torch.Tensor, key: Key) -> list[Ciphertext]:
        """Encrypt a batch of [0, 1] images (N, C, H, W) into sealed, self-verified ciphertexts.

        Raises :class:`EncryptionError` if any image fails its check (see :meth:`encrypt_each`).
        """
        results = self.encrypt_each(images, key)
        for i, result in enumerate(results):
            if isinstance(result, EncryptionError):
                raise EncryptionError(f"image {i}: {result}")
        return results  # type: ignore[return-value]

    def encrypt_each(self, images: torch.Tensor, key: Key) -> list[Ciphertext | EncryptionError]:
        """Encrypt a batch; each image gives a ciphertext that passed :meth:`check_ciphertexts`,
        or the error saying why it has none. A failed image is encrypted once more first."""
        self._check_input(images, key)  # before the classifier sees them
        labels = self.plaintext_labels(images)  # once, for the scheme and its self-check
        results: list[Ciphertext | EncryptionError] = list(self.encrypt_unchecked(images, key, labels))
        problems = self.check_ciphertexts(images, results, key, labels)  # type: ignore[arg-type]
        retry = [i for i, p in enumerate(problems) if p is not None]
        if retry:
            again_labels = None if labels is None else labels[retry]
            again = self.encrypt_unchecked(images[retry], key, again_labels)
            second = self.check_ciphertexts(images[retry], again, key, again_labels)
            for i, ct, problem in zip(retry, again, second, strict=True):
                results[i] = ct if problem is None else EncryptionError(problem)
        return results

    def encrypt_kept(self, images: torch.Tensor, key: Key, offset: int = 0) -> Encrypted:
        """Encrypt a batch as :meth:`encrypt_each` does, keeping the ciphertexts that passed and
        saying which images were refused: for measurements that go on past a refused image (a
        report over many images) and count it."""
        return Encrypted.of(self.encrypt_each(images, key), offset)

    def _check_input(self, images: torch.Tensor, key: Key) -> None:
        self.check_shape((images.shape[2], images.shape[3], images.shape[1]))
        self.check_key_kind(key)

    def plaintext_labels(self, images: torch.Tensor) -> torch.Tensor | None:
        """The cloud classifier's labels of plaintexts (N, C, H, W) where the scheme promises
        the ciphertexts keep them, else None."""
        if not self.keeps_plaintext_label:
            return None
        with torch.no_grad():
            return self.cloud_classifier()(images).argmax(1)

    def encrypt_unchecked(
        self, images: torch.Tensor, key: Key, labels: torch.Tensor | None = None
    ) -> list[Ciphertext]:
        """Sealed ciphertexts WITHOUT the self-check: what the scheme's algorithm alone gives,
        for measuring research variants (the paper's ablations change labels by design).
        ``labels``: :meth:`plaintext_labels` of ``images`` if the caller has them.
        Never write these for a user."""
        self._check_input(images, key)
        encrypted = self._encrypt(images, key, labels)
        if self.capabilities.key is None:  # keyless: an unauthenticated image with its metadata
            return [Ciphertext(px, self.name, self.model_id, "", f) for px, f in encrypted]
        key_id = key.key_id if self.publish_key_id else ""
        return [Ciphertext(px, self.name, self.model_id, key_id, f).seal(key) for px, f in encrypted]

    def check_ciphertexts(
        self,
        images: torch.Tensor,
        ciphertexts: Sequence[Ciphertext],
        key: Key,
        labels: torch.Tensor | None = None,
    ) -> list[str | None]:
        """Decrypt each ciphertext as a new process would (from its PNG bytes, nothing reused)
        and compare: the image must come back at the promised fidelity and, where the cloud
        runs the plaintext classifier, the ciphertext must get the plaintext's label.
        ``labels``: :meth:`plaintext_labels` of ``images`` if the caller has them.
        Returns a reason per image, or None where all holds."""
        from noiseveil.metrics import psnr

        reread = [ciphertext_from_bytes(ciphertext_to_bytes(ct)) for ct in ciphertexts]
        plain = to_uint8(images)
        problems: list[str | None] = [None] * len(reread)
        if not self.capabilities.recovers:
            return self._check_labels(images, reread, problems, labels)
        try:
            recovered = self.decrypt_images(reread, key)  # uint8, as the file pipeline writes them
        except SchemeError as err:
            return [f"the ciphertext does not decrypt ({err})"] * len(reread)
        for i, ct in enumerate(reread):
            if np.array_equal(recovered[i], plain[i]):
                continue  # bit-exact: every promise holds (a 12 MP photo needs no float64 PSNR)
            fidelity = float(psnr(recovered[i][None], plain[i][None])[0])
            promised = self.promised_psnr
            if ct.fields.get(RECOVERY_FIELD) == "lossy":
                promised = float(ct.fields[RECOVERY_PSNR_FIELD]) - 0.01  # the header's rounding
            if promised == float("inf"):
                wrong = int((recovered[i] != plain[i]).sum())
                problems[i] = f"decrypts with {wrong} samples wrong ({fidelity:.2f} dB), promised bit-exact"
            elif fidelity < promised:
                problems[i] = f"decrypts to {fidelity:.2f} dB, below the promised {promised:.2f} dB"
        return self._check_labels(images, reread, problems, labels)

    def _check_labels(
        self,
        images: torch.Tensor,
        reread: Sequence[Ciphertext],
        problems: list[str | None],
        labels: torch.Tensor | None,
    ) -> list[str | None]:
        if self.keeps_plaintext_label:
            want = labels if labels is not None else self.plaintext_labels(images)
            with torch.no_grad():
                got = self.cloud_classifier()(ciphertext_tensor(reread)).argmax(1)
            for i in torch.nonzero(want != got).flatten().tolist():
                problems[i] = problems[i] or (
                    f"the classifier labels the ciphertext {int(got[i])}, the plaintext {int(want[i])}"
                )
        return problems

    def check_container(self, ciphertext: Ciphertext) -> None:
        """What anyone can check without the key (the cloud, on upload): the ciphertext names
        this scheme and model, has the model's shape, and carries a tag iff the scheme has keys.
        A changed pixel or field passes here: only the key holder's :meth:`verify` sees it."""
        if ciphertext.scheme != self.name or ciphertext.decrypt_model != self.model_id:
            raise SchemeError(
                f"ciphertext is for {ciphertext.scheme}/{ciphertext.model_id}, "
                f"not {self.name}/{self.model_id}"
            )
        self.check_shape(ciphertext.pixels.shape, "ciphertext")
        keyed = self.capabilities.key is not None
        if keyed and len(ciphertext.tag) != TAG_BYTES:
            raise SchemeError(f"ciphertext of keyed model {self.model_id} has no valid authentication tag")
        if not keyed and (ciphertext.tag or ciphertext.key_id):
            raise SchemeError(f"model {self.model_id} is keyless: its images carry no key id or tag")

    def verify(self, ciphertext: Ciphertext, key: Key) -> None:
        """Check that the ciphertext belongs to this scheme and model and was made with ``key``."""
        if ciphertext.scheme != self.name or ciphertext.decrypt_model != self.model_id:
            raise SchemeError(
                f"ciphertext is for {ciphertext.scheme}/{ciphertext.model_id}, "
                f"not {self.name}/{self.model_id}"
            )
        self.check_shape(ciphertext.pixels.shape, "ciphertext")
        if not self.capabilities.recovers:
            raise SchemeError(
                f"model {self.model_id} ({self.name}) has no decryption: its protected images are "
                "not recoverable, by design"
            )
        self.check_key_kind(key)
        ciphertext.verify(key)

    def decrypt(self, ciphertexts: Sequence[Ciphertext], key: Key) -> torch.Tensor:
        """Verify then decrypt; any wrong key or modification raises before any output exists."""
        for ct in ciphertexts:
            self.verify(ct, key)
        # Verified first, always: what a wrong key yields is only the attacks' to see
        # (noiseveil.hazmat.decrypt_unverified); verified decryption raises instead.
        return self._decrypt(ciphertext_tensor(ciphertexts), [ct.fields for ct in ciphertexts], key)

    def sealed_payload(self, ciphertext: Ciphertext) -> SealedPayload | None:
        """The AEAD-sealed payload a ciphertext of this scheme carries, for a scheme that seals
        its image into one (lossless RIC); None for a scheme whose decryption is arithmetic on
        the pixels. Raises :class:`SchemeError` for metadata it cannot read."""
        return None

    def decrypt_images(self, ciphertexts: Sequence[Ciphertext], key: Key) -> list[np.ndarray]:
        """Verify then decrypt to uint8 (H, W, C) images, one per ciphertext; their sizes may
        differ (photos). What the file pipeline writes."""
        for ct in ciphertexts:
            self.verify(ct, key)
        return self._decrypt_images(ciphertexts, key)

    def decrypt_each(self, ciphertexts: Sequence[Ciphertext], key: Key) -> list[np.ndarray | NoiseveilError]:
        """Verify each ciphertext once, then decrypt the authentic ones together: per ciphertext
        its uint8 image or the error that refused it (a wrong key, a changed byte, a ciphertext
        this model cannot decrypt), so one bad file does not sink a batch (the file pipeline)."""
        out: list[np.ndarray | NoiseveilError | None] = [None] * len(ciphertexts)
        for i, ct in enumerate(ciphertexts):
            try:
                self.verify(ct, key)
            except NoiseveilError as err:
                out[i] = err
        good = [i for i, o in enumerate(out) if o is None]
        try:
            images = self._decrypt_images([ciphertexts[i] for i in good], key) if good else []
        except NoiseveilError:
            # one authentic file the scheme still refuses (e.g. made with another classifier)
            # must not fail the others: each alone (decryption is batch-exact)
            images = [self._decrypt_one(ciphertexts[i], key) for i in good]
        for i, image in zip(good, images, strict=True):
            out[i] = image
        return out  # type: ignore[return-value]

    def _decrypt_one(self, ciphertext: Ciphertext, key: Key) -> np.ndarray | NoiseveilError:
        try:
            return self._decrypt_images([ciphertext], key)[0]
        except NoiseveilError as err:
            return err

    def _decrypt_images(self, ciphertexts: Sequence[Ciphertext], key: Key) -> list[np.ndarray]:
        """Verified ciphertexts to uint8 images, a batch per size (a scheme whose decryption is
        integer arithmetic overrides this to skip the float round trip)."""
        out: list[np.ndarray] = [np.empty(0)] * len(ciphertexts)
        for group in same_shape_groups([ct.pixels.shape for ct in ciphertexts]):
            cts = [ciphertexts[i] for i in group]
            recovered = to_uint8(self._decrypt(ciphertext_tensor(cts), [ct.fields for ct in cts], key))
            for i, image in zip(group, recovered, strict=True):
                out[i] = image
        return out
