"""Classifiers a user brings: TorchScript files, ONNX files and ``nn.Module`` objects.

Each becomes a torch module that RIC's attack can differentiate (ONNX through onnx2torch),
put behind the card's :class:`~noiseveil.classifiers.preprocessing.Preprocessing`, and is
checked before anything is stored: it must take a batch of the card's input tensors, give one
row of class scores per image (as many as the card has labels), finite, with a gradient with
respect to the input that is not all zero (a graph that rounds, thresholds or detaches its
input cannot be attacked, so RIC could not keep its labels).
"""

from __future__ import annotations

import sys
import types
import zipfile
from pathlib import Path

import torch
from torch import nn

from noiseveil.classifiers.architectures import freeze
from noiseveil.classifiers.preprocessing import PreprocessedClassifier, Preprocessing
from noiseveil.exceptions import NoiseveilError

IMPORTED_FORMATS = ("torchscript", "onnx")
ONNX2TORCH_OPSET = 17  # the newest opset whose operators onnx2torch 1.5 converts


class ClassifierImportError(NoiseveilError):
    """A file that is not a usable classifier (one-line message)."""


def detect_format(path: Path) -> str:
    """ "torchscript" (the zip torch.jit.save writes) or "onnx" (a protobuf onnx can parse)."""
    if not path.is_file():
        raise ClassifierImportError(f"{path}: no such file")
    if zipfile.is_zipfile(path):
        return "torchscript"
    try:
        import onnx
    except ImportError:
        raise ClassifierImportError(
            f"{path}: not a TorchScript file, and ONNX support is not installed (pip install onnx onnx2torch)"
        ) from None
    try:
        onnx.checker.check_model(onnx.load(str(path)))
    except Exception:  # onnx raises protobuf's DecodeError, ValidationError, ...: all mean "not ONNX"
        raise ClassifierImportError(f"{path}: not a model (neither a TorchScript nor an ONNX file)") from None
    return "onnx"


def load_network(path: Path, fmt: str) -> nn.Module:
    """The network in ``path`` as a torch module, in eval mode."""
    if fmt == "torchscript":
        try:
            return torch.jit.load(str(path), map_location="cpu").eval()
        except (RuntimeError, OSError, ValueError):
            raise ClassifierImportError(
                f"{path}: not a TorchScript model (torch.jit.load cannot read it)"
            ) from None
    if fmt == "onnx":
        onnx2torch = _onnx2torch()
        try:
            return onnx2torch.convert(str(path)).eval()
        except NotImplementedError:
            pass
        # onnx2torch knows operators up to an older opset than today's exporters write (e.g.
        # Constant of opset 19): the graph converted down to that opset by onnx's own converter
        import onnx
        from onnx import version_converter

        try:
            older = version_converter.convert_version(onnx.load(str(path)), ONNX2TORCH_OPSET)
            return onnx2torch.convert(older).eval()
        except Exception as err:  # the converter's and onnx2torch's errors have no common base
            raise ClassifierImportError(
                f"{path}: onnx2torch cannot convert this graph ({_first_line(err)})"
            ) from None
    raise ClassifierImportError(
        f"{path}: unknown model format {fmt!r} (one of {', '.join(IMPORTED_FORMATS)})"
    )


def _onnx2torch() -> types.ModuleType:
    """onnx2torch, imported without torchvision: it imports torchvision at start-up for its NMS
    and RoIAlign converters only, which no classifier uses, and torchvision has no CPU build
    here. A placeholder stands in while it loads; a graph that needs it fails in one line."""
    try:
        import onnx2torch
    except ModuleNotFoundError as err:
        if err.name != "torchvision":
            raise ClassifierImportError(
                "ONNX support is not installed (pip install onnx onnx2torch)"
            ) from None
    else:
        return onnx2torch

    def unavailable(*_args: object, **_kwargs: object) -> None:
        raise ClassifierImportError("this ONNX graph uses NMS or RoIAlign, which need torchvision")

    vision, ops = types.ModuleType("torchvision"), types.ModuleType("torchvision.ops")
    ops.nms = ops.roi_align = ops.box_convert = unavailable  # type: ignore[attr-defined]
    vision.ops = ops  # type: ignore[attr-defined]
    sys.modules.update({"torchvision": vision, "torchvision.ops": ops})
    try:
        import onnx2torch
    finally:  # no other code may take the placeholder for torchvision
        del sys.modules["torchvision"], sys.modules["torchvision.ops"]
    return onnx2torch


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__


def imported_classifier(path: Path, fmt: str, preprocessing: Preprocessing) -> nn.Module:
    """The frozen classifier of an imported file, taking [0, 1] photos of any size."""
    return freeze(PreprocessedClassifier(load_network(path, fmt), preprocessing))


def check_classifier(model: PreprocessedClassifier, classes: list[str], where: str) -> None:
    """Refuse, in one line, a network RIC cannot protect (see the module docstring)."""
    p = model.preprocessing
    h, w = p.input_size
    photo = torch.rand(2, 3, h + 13, w + 7, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    shape = f"(2, {p.channels}, {h}, {w})"
    try:
        logits = model(photo)
    except Exception as err:  # a foreign graph raises anything (RuntimeError, TypeError, ...)
        raise ClassifierImportError(
            f"{where}: the network does not take a batch of {shape} tensors ({_first_line(err)}); "
            "check --input-size and the input's channels, and export with a dynamic batch axis"
        ) from None
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[0] != 2:
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ClassifierImportError(f"{where}: the network gives {got} for a {shape} batch, not (2, classes)")
    if logits.shape[1] != len(classes):
        raise ClassifierImportError(
            f"{where}: the network scores {logits.shape[1]} classes, the labels file names {len(classes)}"
        )
    if not torch.isfinite(logits).all():
        raise ClassifierImportError(f"{where}: the network gives non-finite scores")
    try:
        logits.max(1).values.sum().backward()
    except RuntimeError as err:
        raise ClassifierImportError(
            f"{where}: the network is not differentiable ({_first_line(err)})"
        ) from None
    grad = photo.grad
    if grad is None or not torch.isfinite(grad).all() or not grad.abs().sum() > 0:
        raise ClassifierImportError(
            f"{where}: the network's scores have no gradient with respect to its input (a graph that "
            "rounds, thresholds or detaches its input cannot be attacked, so RIC cannot keep its labels)"
        )


def module_to_torchscript(module: nn.Module, preprocessing: Preprocessing, path: Path) -> None:
    """Trace a Python ``nn.Module`` (a timm model, say) into a TorchScript file at ``path``, so
    the zoo stores a file that loads without the user's code."""
    h, w = preprocessing.input_size
    example = torch.rand(2, preprocessing.channels, h, w, generator=torch.Generator().manual_seed(0))
    module = module.eval()
    try:
        with torch.no_grad():
            traced = torch.jit.trace(module, example, check_trace=True)
    except Exception as err:
        raise ClassifierImportError(
            f"the module cannot be traced to TorchScript ({_first_line(err)})"
        ) from None
    torch.jit.save(traced, str(path))
