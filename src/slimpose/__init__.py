"""slimpose: efficient human pose estimation (teachers, distilled students, token pruning)."""

__version__ = "0.1.0"


def load(checkpoint, device="cpu", **kwargs):
    """``slimpose.api.load``: a ready-to-use ``PoseModel`` from a .pth / .safetensors checkpoint (lazy import)."""
    from slimpose.api import load as _load

    return _load(checkpoint, device=device, **kwargs)
