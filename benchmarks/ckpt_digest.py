"""sha256 digests of a checkpoint's weights and optimizer states (the parts a seeded run must reproduce).

    python benchmarks/ckpt_digest.py runs/toy_grid/<run>/checkpoints/last.ckpt [...]

The whole file's hash also depends on wall-clock state (timers, paths), so refactors are checked on the
tensors that training produces: ``state_dict`` (weights, buffers, EMA, fixed noise) and ``optimizer_states``.
"""

from __future__ import annotations

import argparse
import hashlib

import torch


def _feed(digest: hashlib._Hash, value: object) -> None:
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous().reshape(-1)
        digest.update(str((t.dtype, tuple(value.shape))).encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(value, dict):
        for key in sorted(value, key=str):
            digest.update(str(key).encode())
            _feed(digest, value[key])
    elif isinstance(value, (list, tuple)):
        for item in value:
            _feed(digest, item)
    else:
        digest.update(repr(value).encode())


def digests(path: str) -> dict[str, str]:
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    out = {}
    for part in ("state_dict", "optimizer_states"):
        digest = hashlib.sha256()
        _feed(digest, ckpt.get(part))
        out[part] = digest.hexdigest()
    out["global_step"] = str(ckpt.get("global_step"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ckpt", nargs="+")
    for path in parser.parse_args().ckpt:
        d = digests(path)
        print(f"{path}: step {d['global_step']} weights {d['state_dict'][:16]} optimizers {d['optimizer_states'][:16]}")


if __name__ == "__main__":
    main()
