"""SqueezeNet 1.1 (Iandola et al., "SqueezeNet: AlexNet-level accuracy with 50x fewer
parameters and <0.5MB model size", 2016), with torchvision's layout::

    x ─conv 3x3/2, 64─ReLU─► relu1 ─pool─fire2─fire3─► fire3 ─pool─fire4─fire5─► fire5
      ─pool─fire6─fire7─fire8─fire9─► fire9 ─(dropout)─conv 1x1, K─ReLU─global mean─► logits

Max-pools are 3x3/2 with ``ceil_mode=True`` (as in Caffe); a fire module is a 1x1 "squeeze"
conv followed by 1x1 and 3x3 "expand" convs whose outputs are concatenated. The ImageNet
weights noiseveil ships (``imagenet-squeezenet``) and the LPIPS-style metric's backbone are
the DeepScale Caffe model as ported to Keras (``scripts/convert_squeezenet.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# (name, in, squeeze, expand) of SqueezeNet 1.1's fire modules.
FIRE_SPECS = (
    ("fire2", 64, 16, 64),
    ("fire3", 128, 16, 64),
    ("fire4", 128, 32, 128),
    ("fire5", 256, 32, 128),
    ("fire6", 256, 48, 192),
    ("fire7", 384, 48, 192),
    ("fire8", 384, 64, 256),
    ("fire9", 512, 64, 256),
)


class Fire(nn.Module):
    def __init__(self, cin: int, squeeze: int, expand: int):
        super().__init__()
        self.squeeze = nn.Conv2d(cin, squeeze, 1)
        self.expand1x1 = nn.Conv2d(squeeze, expand, 1)
        self.expand3x3 = nn.Conv2d(squeeze, expand, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.squeeze(x))
        return torch.cat([F.relu(self.expand1x1(x)), F.relu(self.expand3x3(x))], 1)


def max_pool(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(x, 3, 2, ceil_mode=True)


class SqueezeFeatures(nn.Module):
    """SqueezeNet 1.1 up to fire9, returning the seven layers LPIPS taps
    (relu1, fire3, fire5, fire6, fire7, fire8, fire9)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, stride=2)
        for name, cin, s, e in FIRE_SPECS:
            self.add_module(name, Fire(cin, s, e))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        relu1 = F.relu(self.conv1(x))
        fire3 = self.fire3(self.fire2(max_pool(relu1)))
        fire5 = self.fire5(self.fire4(max_pool(fire3)))
        fire6 = self.fire6(max_pool(fire5))
        fire7 = self.fire7(fire6)
        fire8 = self.fire8(fire7)
        fire9 = self.fire9(fire8)
        return [relu1, fire3, fire5, fire6, fire7, fire8, fire9]


class SqueezeNet(nn.Module):
    """The whole classifier: :class:`SqueezeFeatures` and the 1x1 conv head (conv10).

    Takes the network's own input (the card's preprocessing makes it from a photo); returns
    logits, the class scores before Caffe's softmax. Dropout is the identity at test time and
    is left out."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.features = SqueezeFeatures()
        self.conv10 = nn.Conv2d(512, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fire9 = self.features(x)[-1]
        return F.relu(self.conv10(fire9)).mean((2, 3))
