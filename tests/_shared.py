"""Where the real sample data lives: ``shared/data/real`` beside the checkout (as on CI), else /work/shared."""

from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]
_CANDIDATES = (_REPO.parent / "shared" / "data" / "real", Path("/work/shared/data/real"))
SHARED_REAL = next((p for p in _CANDIDATES if p.is_dir()), _CANDIDATES[0])
