"""DistilPose recipes (Ye et al., CVPR 2023): regression students distilled from a heatmap teacher.

Each is a ``TrainConfig`` whose ``model`` is the student and whose ``distill`` section
(``DistilPoseConfig``) holds the teacher and the Eq. 7 weights. Official recipe facts (yshMars/DistilPose
configs): Adam lr 1e-3, linear warm-up 500 iterations (ratio 1e-3), x0.1 at epochs 200 and 260, 300
epochs, flip / half-body / rotation 45 / scale 0.35 augmentation, input 256x192, teacher heatmaps 64x48
(MSRA, sigma 2), a = 5e-4, 5e-4, 1, 1e-2; tested with detection boxes
(``COCO_val2017_detections_AP_H_56_person.json``), flip test and ``vis_thr=0.2`` rescoring.
"""

from __future__ import annotations

from typing import Callable

from slimpose.config.schema import DistilPoseConfig, ModelConfig, TrainConfig


# ----------------------------------------------------------------------------------------------- recipes


def _official(cfg: TrainConfig, distill: DistilPoseConfig | None = None) -> TrainConfig:
    """Schedule / optimiser / test settings shared by the official DistilPose COCO configs."""
    cfg.distill = distill or DistilPoseConfig()
    cfg.data.dataset = "coco"
    cfg.data.data_root = "data/coco"
    cfg.data.input_size = (192, 256)
    cfg.data.heatmap_size = (48, 64)
    cfg.data.batch_size = 32
    cfg.optim.lr = 1e-3
    cfg.schedule.epochs = 300
    cfg.schedule.milestones = (200, 260)
    cfg.schedule.warmup_iters = 500
    cfg.flip_test = True
    cfg.dark = False  # the student regresses coordinates: no heatmap post-processing
    # official data_cfg: detection boxes at test time, rescoring with keypoint scores above vis_thr=0.2
    cfg.data.use_gt_bbox = False
    cfg.score_thr = 0.2
    return cfg


def distilpose_s_coco() -> TrainConfig:
    """DistilPose-S (71.6 AP COCO val) from the HRNet-W48 + TokenPose teacher (all four terms)."""
    cfg = _official(TrainConfig(name="distilpose_s_coco", work_dir="work_dirs/distilpose_s_coco"))
    cfg.model = ModelConfig(name="distilpose_s")
    return cfg


def distilpose_l_coco() -> TrainConfig:
    """DistilPose-L (74.4 AP COCO val); the official config initialises the backbone from the teacher."""
    cfg = _official(TrainConfig(name="distilpose_l_coco", work_dir="work_dirs/distilpose_l_coco"))
    cfg.model = ModelConfig(name="distilpose_l")
    return cfg


def distilpose_s_coco_nodistill() -> TrainConfig:
    """The same student trained with L_reg only (paper Table 4 first row, 56.0 AP); constant scores."""
    cfg = distilpose_s_coco()
    cfg.name, cfg.work_dir = "distilpose_s_coco_nodistill", "work_dirs/distilpose_s_coco_nodistill"
    cfg.distill = DistilPoseConfig(kt=0.0, vt=0.0, sh=0.0, cs=0.0)
    return cfg


def distilpose_l_coco_nodistill() -> TrainConfig:
    cfg = distilpose_l_coco()
    cfg.name, cfg.work_dir = "distilpose_l_coco_nodistill", "work_dirs/distilpose_l_coco_nodistill"
    cfg.distill = DistilPoseConfig(kt=0.0, vt=0.0, sh=0.0, cs=0.0)
    return cfg


def deeppose_res50_coco() -> TrainConfig:
    """Table 6: DeepPose-ResNet-50 from SimpleBaseline-ResNet-50 with Simulated Heatmaps (L_SH + L_CS)."""
    cfg = _official(TrainConfig(name="deeppose_res50_coco", work_dir="work_dirs/deeppose_res50_coco"))
    cfg.model = ModelConfig(name="deeppose_res50")
    cfg.distill = DistilPoseConfig(teacher_model="simplebaseline_res50", kt=0.0, vt=0.0, sh=1.0, cs=1e-2)
    return cfg


def deeppose_res50_coco_nodistill() -> TrainConfig:
    """Table 6 baseline (52.6 AP): DeepPose-ResNet-50 with L_reg only."""
    cfg = deeppose_res50_coco()
    cfg.name, cfg.work_dir = "deeppose_res50_coco_nodistill", "work_dirs/deeppose_res50_coco_nodistill"
    cfg.distill = DistilPoseConfig(teacher_model="simplebaseline_res50", kt=0.0, vt=0.0, sh=0.0, cs=0.0)
    return cfg


def distilpose_tiny_synthetic() -> TrainConfig:
    """A CPU-sized run on the synthetic people, shaped like the ``tokenpose_tiny_synthetic`` teacher recipe.

    Data, optimiser and schedule are that recipe's (64x96 input, 16x24 heatmaps); the student has the
    teacher's TDE shape and token grid (dim 64, 4 layers, 4 heads, 2x2 patches -> 96 visual tokens) on a
    StemNet with one Bottleneck. Pass the teacher's checkpoint with ``--teacher``.
    """
    from slimpose.config.recipes.topdown import tokenpose_tiny_synthetic

    cfg = tokenpose_tiny_synthetic()
    base_overrides = dict(cfg.model.overrides)
    teacher_name = cfg.model.name
    cfg.name, cfg.work_dir = "distilpose_tiny_synthetic", "work_dirs/distilpose_tiny_synthetic"
    keys = ("dim", "depth", "num_heads", "patch_size")
    student = {k: base_overrides[k] for k in keys if k in base_overrides}
    cfg.model = ModelConfig(name="distilpose_s", overrides={**student, "stem_blocks": 1})
    cfg.distill = DistilPoseConfig(teacher_model=teacher_name, teacher_overrides={})
    cfg.dark = False
    cfg.score_thr = 0.0
    return cfg


RECIPES: dict[str, Callable[[], TrainConfig]] = {
    "distilpose_s_coco": distilpose_s_coco,
    "distilpose_l_coco": distilpose_l_coco,
    "distilpose_s_coco_nodistill": distilpose_s_coco_nodistill,
    "distilpose_l_coco_nodistill": distilpose_l_coco_nodistill,
    "deeppose_res50_coco": deeppose_res50_coco,
    "deeppose_res50_coco_nodistill": deeppose_res50_coco_nodistill,
    "distilpose_tiny_synthetic": distilpose_tiny_synthetic,
}
