"""slimpose: efficient human pose estimation (teachers, distilled students, token pruning)."""

__version__ = "0.1.0"
