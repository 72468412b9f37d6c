"""Where the real sample data lives: ``shared/data/real`` beside the checkout (as on CI), else /work/shared."""

from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]
_CANDIDATES = (_REPO.parent / "shared" / "data" / "real", Path("/work/shared/data/real"))
SHARED_REAL = next((p for p in _CANDIDATES if p.is_dir()), _CANDIDATES[0])

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str):
    """The script ``benchmarks/<name>.py`` as a module (its sibling scripts importable while it loads)."""
    import importlib.util
    import sys

    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location(f"{name}_bench", BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCHMARKS))
    return module


def lifting_input(batch: int = 2, frames: int = 27, joints: int = 17, seed: int = 0):
    """A (batch, frames, joints, 2) random 2-D sequence in [-1, 1), like normalised screen coordinates."""
    import torch

    return torch.rand(batch, frames, joints, 2, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def randomise_embeddings(model, seed: int = 0) -> None:
    """The official zero-initialised position embeddings / queries of a lifter get random values, so that they
    matter in a comparison."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "pos_embed" in name or "x_token" in name:
                p.copy_(torch.randn(p.shape, generator=g))
