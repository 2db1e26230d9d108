"""``inception-v3-compat``: torch-fidelity's InceptionV3 (Szegedy et al. 2016) with the TF1 graph's weights.

This is the network of the reference FID (Heusel et al. 2017), IS (Salimans et al. 2016) and KID (Bińkowski
et al. 2018) implementations: inputs are resized to 299×299 with TF1-compatible bilinear interpolation inside
torch-fidelity's module (``resize="tf1-bilinear"``, the default) or, with ``resize="clean-bicubic"``, with
clean-fid's antialiased PIL bicubic before it (:mod:`.resize`; the protocol records which); features are the
2048-d pool3 activations and logits the 1008 "unbiased" logits (no bias term), as torch-fidelity uses for IS.
Grey images are repeated to RGB.

Weights (``weights_path`` or torch hub's cache) are never downloaded unless ``download=True``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor

from lightning_gans.download import fetch
from lightning_gans.errors import DownloadError
from lightning_gans.metrics.extractors import ExtractorWeightsError, FeatureExtractor, file_sha256
from lightning_gans.metrics.resize import check_resize, clean_resize_uint8

NAME = "inception-v3-compat"
DOWNLOAD_TIMEOUT_S = 60.0  # per connect/read: bounds a stalled connection


def weights_url() -> str:
    """torch-fidelity's URL of the converted TF1 InceptionV3 weights."""
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    return URL_INCEPTION_V3


def default_weights_path() -> Path:
    """Where torch hub (and so torch-fidelity) caches the weights: ``<hub dir>/checkpoints/<URL basename>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights_url())


def _missing(path: Path, reason: str | None = None) -> ExtractorWeightsError:
    url = weights_url()
    target = default_weights_path()
    obtain = (
        f"Download it from {url}, e.g.\n"
        f"    mkdir -p {target.parent} && wget -O {target} {url}\n"
        f"  (or build the extractor with download=True when online; the hub dir follows $TORCH_HOME)"
    )
    return ExtractorWeightsError.for_file(NAME, path, obtain, reason)


def _download(target: Path) -> str | None:
    """Fetch the weights to ``target`` (atomically: never a partial file there); None on success, else a one-line
    reason naming the URL and why it failed."""
    try:
        fetch(weights_url(), target, what=f"{NAME} weights", timeout_s=DOWNLOAD_TIMEOUT_S, progress=True)
    except DownloadError as err:
        return f"download failed: {err.reason}"
    return None


def resolve_weights(weights_path: str | Path | None = None, download: bool = False) -> Path:
    """The weights file to load: ``weights_path`` if given, else torch hub's cached copy (downloaded only when
    absent and ``download=True``). Raises :class:`ExtractorWeightsError` when no file is available."""
    if weights_path is not None:
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise _missing(path, "weights_path points to no file")
        return path
    path = default_weights_path()
    if path.is_file():
        return path
    if not download:
        raise _missing(path, "download=False")
    reason = _download(path)
    if reason is not None:
        raise _missing(path, reason)
    return path


def check_inception(
    weights_path: str | Path | None = None, download: bool = False, resize: str = "tf1-bilinear"
) -> None:
    """Cheap check: a known resize, and the weights file exists (with ``download=True`` a missing file is fetched
    now, not later)."""
    check_resize(resize)
    resolve_weights(weights_path, download)


class InceptionV3Compat(FeatureExtractor):
    """torch-fidelity's ``FeatureExtractorInceptionV3`` behind the :class:`FeatureExtractor` contract."""

    name = NAME
    num_features = 2048
    num_classes = 1008
    image_size = 299
    resize = "tf1-bilinear-299"

    def __init__(
        self, weights_path: str | Path | None = None, download: bool = False, resize: str = "tf1-bilinear"
    ) -> None:
        super().__init__()
        self.resize_policy = check_resize(resize)
        self.resize = f"{resize}-{self.image_size}"  # the protocol's resize: never ranked against the other one
        path = resolve_weights(weights_path, download)
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        # An explicit path means torch-fidelity neither downloads nor touches CUDA: the module is built and
        # loaded on CPU; the caller moves this extractor (and so the network) to its device.
        self.net = FeatureExtractorInceptionV3(
            NAME, ["2048", "logits_unbiased"], feature_extractor_weights_path=str(path)
        )
        self.weights_path = path
        self.weights_id = file_sha256(path)[:12]

    def extract(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        images = self.to_rgb(images)
        if self.resize_policy == "clean-bicubic" and images.shape[-2:] != (self.image_size, self.image_size):
            images = clean_resize_uint8(images, self.image_size)  # then torch-fidelity's resize is the identity
        features, logits = self.net(images)
        return features, logits


def build_inception(
    weights_path: str | Path | None = None, download: bool = False, resize: str = "tf1-bilinear"
) -> InceptionV3Compat:
    return InceptionV3Compat(weights_path=weights_path, download=download, resize=resize)
