"""Frozen face-recognition (FR) embeddings for Age-cGAN's identity-preserving optimisation (*GAN Projects* ch. 3).

The chapter's FR is Keras' ImageNet ``InceptionResNetV2(include_top=False, pooling="avg")`` (plus an untrained
Dense 128 in its companion code) on the 64² image upsampled ×3 (nearest) to 192². Inception-ResNet-v2 is not in
torchvision, so two pluggable choices:

* :class:`TorchvisionFaceEmbedding` — any torchvision classifier with ImageNet weights, its classification layer
  removed: the pooled features, L2-normalised (default ``inception_v3``, the closest torchvision relative of the
  chapter's network). Weights: ``weights_path`` (a state-dict file) or torchvision's cache
  (``$TORCH_HOME/hub/checkpoints/<file of the weights enum>``), downloaded when reachable.
* :class:`UserFaceEmbedding` — a face-embedding model you supply (e.g. a FaceNet/ArcFace exported with
  ``torch.jit.save``, or a pickled ``nn.Module``), with its own input size, range and normalisation.

Weights load in :meth:`FaceEmbedding.load` (called at the start of the identity stage): missing weights raise
:class:`FaceRecognitionWeightsError` then, saying where to put which file. The untrained Dense 128 of the companion
code is left out (a random projection adds nothing to a frozen embedding).

Preprocessing (the chapter's bug fixed: real faces went in as ``x/255`` ∈ [0, 1], generated ones in [-1, 1]):
both branches enter ``forward`` in the project's [-1, 1] and go through the same ``preprocess`` of the FR network —
for torchvision, [-1, 1] → [0, 1] → resize to ``input_size`` (the chapter's ×3 nearest: 192) → ImageNet mean/std.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from lightning_gans.download import fetch
from lightning_gans.errors import DownloadError, FaceRecognitionWeightsError  # the latter: also the old import path

DOWNLOAD_TIMEOUT_S = 10.0  # per connect/read: an offline run fails fast


class FaceEmbedding(nn.Module):
    """A frozen embedding network: ``forward(x in [-1, 1])`` → L2-normalised (N, D). Subclasses build ``backbone``
    in ``load()`` and define ``preprocess``; a plain subclass with a ready ``backbone`` needs no ``load``."""

    def __init__(self, input_size: int = 192, resize_mode: str = "nearest") -> None:
        super().__init__()
        self.input_size, self.resize_mode = input_size, resize_mode
        self.backbone: nn.Module | None = None

    def load(self) -> FaceEmbedding:
        """Build the frozen backbone (idempotent)."""
        if self.backbone is None:
            raise NotImplementedError
        return self._freeze()

    def _freeze(self) -> FaceEmbedding:
        for parameter in self.backbone.parameters():  # ScriptModules have no requires_grad_()
            parameter.requires_grad_(False)
        return self.eval()

    def train(self, mode: bool = True) -> FaceEmbedding:
        """Always eval mode: frozen BatchNorm statistics, no dropout."""
        return super().train(False)

    def resize(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] == self.input_size and x.shape[-2] == self.input_size:
            return x
        align = None if self.resize_mode == "nearest" else False
        return F.interpolate(x, size=(self.input_size, self.input_size), mode=self.resize_mode, align_corners=align)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        return self.resize(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.backbone is None:
            self.load()
        features = self.backbone(self.preprocess(x))
        if isinstance(features, (tuple, list)):  # e.g. inception's (logits, aux) in train mode
            features = features[0]
        return F.normalize(features.flatten(1), dim=1)


def _builder_kwargs(arch: str, categories: int) -> dict:
    """The constructor arguments torchvision's builders set when they load ImageNet weights."""
    kwargs: dict = {"num_classes": categories}
    if arch in ("inception_v3", "googlenet"):
        kwargs.update(transform_input=True, aux_logits=True, init_weights=False)
    return kwargs


class TorchvisionFaceEmbedding(FaceEmbedding):
    """A torchvision ImageNet classifier without its last layer as the FR embedding (see module docstring)."""

    def __init__(
        self,
        arch: str = "inception_v3",
        weights: str = "DEFAULT",
        weights_path: str | None = None,
        input_size: int = 192,
        resize_mode: Literal["nearest", "bilinear", "bicubic"] = "nearest",
        download: bool = True,
    ) -> None:
        super().__init__(input_size, resize_mode)
        from torchvision.models import get_model_weights

        try:
            self.weights_enum = get_model_weights(arch)[weights]
        except (ValueError, KeyError) as err:
            raise ValueError(
                f"face recognition: no torchvision weights {weights!r} for arch {arch!r} ({err})"
            ) from None
        self.arch, self.weights_path, self.download = arch, weights_path, download
        transform = self.weights_enum.transforms()
        self.register_buffer("mean", torch.tensor(transform.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(transform.std).view(1, 3, 1, 1), persistent=False)

    def cache_file(self) -> Path:
        """Where torchvision keeps these weights: ``$TORCH_HOME/hub/checkpoints/<file name of the URL>``."""
        return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(self.weights_enum.url)

    def _weights_file(self) -> Path:
        if self.weights_path is not None:
            path = Path(self.weights_path).expanduser()
            if not path.is_file():
                raise FaceRecognitionWeightsError(
                    f"face recognition: weights_path {path} does not exist (a state dict of torchvision's {self.arch})"
                )
            return path
        path = self.cache_file()
        if path.is_file():
            return path
        reason = "download=False"
        if self.download:
            what = f"ImageNet weights of torchvision's {self.arch}"
            try:
                return fetch(self.weights_enum.url, path, what=what, timeout_s=DOWNLOAD_TIMEOUT_S, progress=False)
            except DownloadError as err:  # offline, proxy pages, interrupted transfers
                reason = f"download failed: {err.reason}"
        raise FaceRecognitionWeightsError(
            f"face recognition: no ImageNet weights for {self.arch} ({reason}). Put {self.weights_enum.url} at "
            f"{path} (torchvision's cache, $TORCH_HOME), or set weights_path=/path/to/file.pth, or plug in your own "
            "face-embedding model (lightning_gans.networks.face_recognition.UserFaceEmbedding)"
        )

    def load(self) -> TorchvisionFaceEmbedding:
        if self.backbone is not None:
            return self
        from torchvision.models import get_model

        path = self._weights_file()
        categories = len(self.weights_enum.meta["categories"])
        model = get_model(self.arch, weights=None, **_builder_kwargs(self.arch, categories))
        try:
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        except (RuntimeError, OSError, ValueError) as err:
            raise FaceRecognitionWeightsError(
                f"face recognition: {path} is not a state dict of torchvision's {self.arch} "
                f"({' '.join(str(err).split()[:30])})"
            ) from None
        for head in ("fc", "classifier", "heads"):
            if hasattr(model, head):
                setattr(model, head, nn.Identity())
                break
        self.backbone = model.to(self.mean.device)
        return self._freeze()

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """[-1, 1] → [0, 1] → ``input_size``² → ImageNet mean/std (torchvision's preprocessing of these weights)."""
        return (self.resize((x + 1) / 2) - self.mean) / self.std


class UserFaceEmbedding(FaceEmbedding):
    """Your face-embedding model from ``path`` (TorchScript, else a pickled ``nn.Module``), fed images resized to
    ``input_size``² in ``input_range`` (``"signed"`` [-1, 1] or ``"unit"`` [0, 1]), then ``(x − mean) / std``
    when given — state the preprocessing your model was trained with."""

    def __init__(
        self,
        path: str,
        input_size: int = 160,
        input_range: Literal["signed", "unit"] = "signed",
        mean: list[float] | None = None,
        std: list[float] | None = None,
        resize_mode: Literal["nearest", "bilinear", "bicubic"] = "bilinear",
    ) -> None:
        super().__init__(input_size, resize_mode)
        if input_range not in ("signed", "unit"):
            raise ValueError(f"input_range must be 'signed' ([-1, 1]) or 'unit' ([0, 1]), got {input_range!r}")
        self.path, self.input_range = path, input_range
        self.mean = None if mean is None else torch.tensor(mean).view(1, -1, 1, 1)
        self.std = None if std is None else torch.tensor(std).view(1, -1, 1, 1)

    def load(self) -> UserFaceEmbedding:
        if self.backbone is not None:
            return self
        path = Path(self.path).expanduser()
        if not path.is_file():
            raise FaceRecognitionWeightsError(
                f"face recognition: face-embedding model {path} does not exist (save yours with torch.jit.save, "
                "or use TorchvisionFaceEmbedding)"
            )
        try:
            model = torch.jit.load(str(path), map_location="cpu")
        except RuntimeError:
            model = torch.load(path, map_location="cpu", weights_only=False)
        if not isinstance(model, nn.Module):
            raise FaceRecognitionWeightsError(f"face recognition: {path} holds a {type(model).__name__}, not a model")
        self.backbone = model
        return self._freeze()

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        x = self.resize(x if self.input_range == "signed" else (x + 1) / 2)
        if self.mean is not None:
            x = x - self.mean.to(x.device)
        if self.std is not None:
            x = x / self.std.to(x.device)
        return x
