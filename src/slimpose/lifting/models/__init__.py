"""3-D lifting models and their index.

``LIFTERS`` maps each published variant's name to its factory (a plain dict, written out by hand, like
``slimpose.models.MODELS``). Every factory takes ``num_frames=243, num_joints=17, dim=512, depth=8`` and
keyword overrides (small CPU versions: ``mixste(num_frames=27, dim=32, depth=2)``,
``h2ot_mixste(num_frames=27, dim=32, depth=4)``). Every lifter takes
(B, T, J, 2) 2-D keypoint sequences (``model.input_spec``: a ``SequenceInput``) and returns 3-D poses:
(B, T, J, 3) for the seq2seq models, (B, 1, J, 3) for the seq2frame ``tpc_mixste``. KTPFormer's factories
default to ``depth=7`` (its MixSTE pairs after the two prior blocks); StarPose's take ``dim`` as the
denoiser width and ``context_dim`` / ``context_depth`` for its MixSTE context encoder (``starpose_s``: 27
frames). StarPose also takes an L-frame history: ``model(x, history_2d, history_3d)``. See
docs/lifting_models.md.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from slimpose.lifting.models.h2ot import H2OT_SCHEDULE, H2OTMixSTE, h2ot_mixste
from slimpose.lifting.models.hot import HoTMixSTE, TPCMixSTE, hot_mixste, tpc_mixste
from slimpose.lifting.models.ktpformer import HoTKTPFormer, KTPFormer, hot_ktpformer, ktpformer
from slimpose.lifting.models.mixste import MixSTE, mixste
from slimpose.lifting.models.pruning import (
    TPA, TPC, TPS, TRA, TRI, TPMo, TokenPruner, TokenRecovery, cluster_dpc_knn,
)
from slimpose.lifting.models.spec import SequenceInput
from slimpose.lifting.models.starpose import StarPose, starpose, starpose_s
from slimpose.models._factory import create_from

LIFTERS: dict[str, Callable[..., nn.Module]] = {
    # MixSTE: alternating spatial / temporal transformer blocks, seq2seq
    "mixste": mixste,
    # HoT on MixSTE: TPC pruning (81 of 243 frames before block pair 3) + TRA recovery, seq2seq
    "hot_mixste": hot_mixste,
    # TPC-MixSTE: TPC only (61 frames before block pair 7, the centre always kept), seq2frame
    "tpc_mixste": tpc_mixste,
    # H2OT on MixSTE: pruning in stages (121, 61, 31 of 243 frames before block pairs 2, 3, 4) + TRA, seq2seq
    "h2ot_mixste": h2ot_mixste,
    # KTPFormer: kinematics (KPA) and trajectory (TPA) prior attention blocks, then 7 MixSTE pairs, seq2seq
    "ktpformer": ktpformer,
    # HoT on KTPFormer: the prior blocks in front, TPC (81 of 243 before KTPFormer pair 2) + TRA
    "hot_ktpformer": hot_ktpformer,
    # StarPose: autoregressive diffusion (MixSTE context, HPIM history, GraFormer denoiser, GMM prior, STPG)
    "starpose": starpose,
    # StarPose sized for CPU experiments (27 frames, dim 64)
    "starpose_s": starpose_s,
}


def create_lifter(name: str, **overrides) -> nn.Module:
    """Build ``LIFTERS[name](**overrides)``; an unknown name raises SlimposeInputError listing known ones."""
    return create_from(LIFTERS, name, "lifting model", **overrides)


__all__ = [
    "H2OTMixSTE", "H2OT_SCHEDULE", "HoTMixSTE", "LIFTERS", "MixSTE", "SequenceInput", "TPA", "TPC", "TPCMixSTE",
    "TPMo", "TPS", "TRA", "TRI", "TokenPruner", "TokenRecovery", "cluster_dpc_knn", "create_lifter", "h2ot_mixste",
    "hot_mixste", "mixste", "tpc_mixste", "HoTKTPFormer", "KTPFormer", "hot_ktpformer", "ktpformer",
    "StarPose", "starpose", "starpose_s",
]
