"""Target codecs: ``encode(keypoints (K, 2), weights (K,))`` -> targets, ``decode(batch)`` -> keypoints.

One file per representation (MSRA/DARK heatmaps, UDP heatmaps, SimCC labels, normalised regression)
plus flip-test helpers; see docs/architecture.md for the contract.
"""

from .flip import (flip_coordinates_back, flip_heatmaps_back, flip_keypoints, flip_permutation,
                   flip_simcc_back)
from .msra_heatmap import MSRAHeatmap
from .regression import RegressionLabel
from .simcc import SimCCLabel
from .udp_heatmap import UDPHeatmap

__all__ = [
    "MSRAHeatmap",
    "UDPHeatmap",
    "SimCCLabel",
    "RegressionLabel",
    "flip_heatmaps_back",
    "flip_coordinates_back",
    "flip_simcc_back",
    "flip_keypoints",
    "flip_permutation",
]
