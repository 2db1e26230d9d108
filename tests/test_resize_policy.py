"""The resize policy of Inception (clean-fid's PIL bicubic next to torch-fidelity's TF1 bilinear) is part of the
protocol: separate metric protocols, separate cache keys, separate compare tables."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from lightning_gans.evaluation import make_protocol
from lightning_gans.metrics import ReferenceCache, build_extractor, check_extractor
from lightning_gans.metrics.resize import clean_resize_uint8, pil_bicubic
from lightning_gans.workflows.compare import compare


class RecordingInception(nn.Module):
    """Stands in for torch-fidelity's InceptionV3 (no weights here): records its input, returns fixed shapes."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__()
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        assert x.dtype == torch.uint8  # torch-fidelity's contract
        self.inputs.append(x)
        return x.float().mean((2, 3)).repeat(1, 683)[:, :2048], torch.zeros(len(x), 1008)


@pytest.fixture()
def fake_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    weights = tmp_path / "inception.pth"
    weights.write_bytes(b"not really weights")
    import torch_fidelity.feature_extractor_inceptionv3 as tf_inception

    monkeypatch.setattr(tf_inception, "FeatureExtractorInceptionV3", RecordingInception)
    return weights


def test_pil_bicubic_is_pils_float_resize_per_channel() -> None:
    images = torch.randint(0, 256, (2, 3, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    got = pil_bicubic(images, 299)
    channel = Image.fromarray(images[1, 2].numpy().astype(np.float32), mode="F").resize((299, 299), Image.BICUBIC)
    assert torch.equal(got[1, 2], torch.from_numpy(np.clip(np.asarray(channel), 0, 255)))
    assert got.shape == (2, 3, 299, 299) and got.min() >= 0 and got.max() <= 255
    assert torch.equal(clean_resize_uint8(images, 299), got.round().to(torch.uint8))
    flat = torch.full((1, 1, 8, 8), 77, dtype=torch.uint8)
    assert torch.equal(clean_resize_uint8(flat, 299), torch.full((1, 1, 299, 299), 77, dtype=torch.uint8))


def test_clean_resize_runs_before_the_network_and_is_in_the_protocol(fake_weights: Path) -> None:
    tf1 = build_extractor("inception-v3-compat", weights_path=fake_weights)
    clean = build_extractor("inception-v3-compat", weights_path=fake_weights, resize="clean-bicubic")
    images = torch.randint(0, 256, (4, 1, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    tf1(images)
    clean(images)
    assert tf1.net.inputs[0].shape == (4, 3, 32, 32)  # torch-fidelity resizes inside (TF1 bilinear)
    assert torch.equal(clean.net.inputs[0], clean_resize_uint8(images.expand(-1, 3, -1, -1), 299))
    assert (tf1.resize, clean.resize) == ("tf1-bilinear-299", "clean-bicubic-299")
    p_tf1, p_clean = (make_protocol("celeba", "test", 10000, e) for e in (tf1, clean))
    assert p_tf1 != p_clean and ReferenceCache.key(p_tf1) != ReferenceCache.key(p_clean)
    with pytest.raises(ValueError, match="resize must be one of tf1-bilinear, clean-bicubic, got 'lanczos'"):
        check_extractor("inception-v3-compat", weights_path=fake_weights, resize="lanczos")


def _run(root: Path, name: str, resize: str, fid: float) -> None:
    run = root / name / "20260101-000000"
    run.mkdir(parents=True)
    protocol = {"dataset": "celeba", "split": "test", "n": 10000, "extractor": "inception-v3-compat"}
    protocol |= {"weights": "6726825d", "image_size": 299, "resize": resize}
    row = {"kind": "eval", "step": 100, "protocol": protocol, "fid/inception-v3-compat/10k": fid}
    (run / "metrics.jsonl").write_text(json.dumps(row) + "\n")


def test_compare_never_ranks_the_two_resizes_together(tmp_path: Path) -> None:
    _run(tmp_path / "runs", "a", "tf1-bilinear-299", 20.0)
    _run(tmp_path / "runs", "b", "clean-bicubic-299", 15.0)
    markdown, _, _ = compare([str(tmp_path / "runs")], out=str(tmp_path / "cmp"))
    assert "not ranked together (different resize: " in markdown
    assert markdown.count("| 1 |") == 2 and "| 2 |" not in markdown  # two tables of one run each
