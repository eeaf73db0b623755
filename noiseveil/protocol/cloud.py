"""The cloud's side of the protocol: it holds ψ and answers loss and classification requests.

It sees protected images and labels, never a plaintext, and returns losses, gradients with
respect to the protected images and labels, never ψ's weights.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from noiseveil.protocol.messages import (
    ClassifyReply,
    ClassifyRequest,
    LossReply,
    LossRequest,
    ProtocolError,
)


class CloudService:
    """Answers protocol messages with the classifier ψ (frozen: the user trains h_θ only)."""

    def __init__(self, classifier: nn.Module, image_shape: tuple[int, int, int], num_classes: int) -> None:
        self.classifier = classifier.eval()
        for p in self.classifier.parameters():
            p.requires_grad_(False)
        h, w, c = image_shape
        self.chw, self.num_classes = (c, h, w), num_classes

    def _images(self, kind: str, protected) -> torch.Tensor:
        if tuple(protected.shape[1:]) != self.chw:
            raise ProtocolError(
                f"{kind}: images of shape {tuple(protected.shape[1:])}, this model takes {self.chw}"
            )
        return torch.from_numpy(protected)

    def class_loss(self, request: LossRequest) -> LossReply:
        """L_class (eq. 5, mean over the batch) and ∂L_class/∂x̂."""
        if (request.labels >= self.num_classes).any():
            raise ProtocolError(f"{request.kind}: labels must be below {self.num_classes}")
        x = self._images(request.kind, request.protected).requires_grad_(True)
        logits = self.classifier(x)
        y = torch.from_numpy(request.labels)
        loss = F.cross_entropy(logits, y)
        (grad,) = torch.autograd.grad(loss, x)
        correct = (logits.argmax(1) == y).sum()
        return LossReply(loss=loss.detach().double().numpy(), grad=grad.numpy(), correct=correct.numpy())

    @torch.no_grad()
    def classify(self, request: ClassifyRequest) -> ClassifyReply:
        logits = self.classifier(self._images(request.kind, request.protected))
        return ClassifyReply(labels=logits.argmax(1).numpy())
