"""Training configuration: one tree of plain dataclasses for every model, head and method.

``TrainConfig`` holds ``data`` (:class:`DataConfig`), ``model`` (:class:`ModelConfig`), ``optim``
(:class:`OptimConfig`), ``schedule`` (:class:`ScheduleConfig`), run and test settings, and the optional
sections of heads and methods: ``simcc`` (:class:`SimCCParams`), ``distill`` (:class:`DistilPoseConfig`,
DistilPose's teacher and Eq. 7 weights) and ``sdpose`` (:class:`SDPoseConfig`, SDPose's Eq. 3 weights).
A method's section is at the same time its recipe section and the configuration of its loss terms; a run
with a method section trains through the distiller. Every run writes its config as ``config.json``;
``slimpose.config.parse`` reads it back and applies ``--set key.sub=value`` overrides.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field
from typing import Any

from slimpose.data.transforms import AugmentConfig
from slimpose.utils.io import SlimposeInputError

AMP_MODES = ("none", "fp16", "bf16")
OPTIMIZERS = ("adam", "adamw")
DISTILL_SCHEDULES = ("constant", "linear_decay")
VKD_NORMALIZERS = ("batch", "batch_keypoints")  # multikd.vkd_normalizer
FEATURE_DISTANCES = ("mse", "sum")  # multikd.distance
KT_STAGES = ("token", "student")  # knowledge_token.stage
KT_PROJECTIONS = ("auto", "linear", "none")  # knowledge_token.projection


def _augment_params_class() -> type:
    """``AugmentParams``: the fields of ``slimpose.data.transforms.AugmentConfig`` (see there), mutable.

    Defaults: HRNet / TokenPose (flip 0.5, half body p=0.3 with > 8 labelled joints, scale 0.35,
    rotation 45 deg with p=0.6); colour jitter is not part of the official recipes (off here).
    """
    defaults = {"color_jitter": False}
    hints = typing.get_type_hints(AugmentConfig)
    fields = [
        (f.name, hints[f.name], field(default=defaults.get(f.name, f.default)))
        for f in dataclasses.fields(AugmentConfig)
    ]
    cls = dataclasses.make_dataclass("AugmentParams", fields)
    cls.__module__ = __name__
    cls.__doc__ = _augment_params_class.__doc__
    return cls


AugmentParams = _augment_params_class()


@dataclass
class DataSource:
    """One more training data set (``DataConfig.extra_train``): its catalog name, root, optional explicit
    files and its sampling weight. Every source keeps its own skeleton (``slimpose.data.catalog``)."""

    dataset: str = "synthetic"
    data_root: str = "data/synthetic"
    train_ann: str | None = None
    train_images: str | None = None
    weight: float = 1.0


@dataclass
class DataConfig:
    """The main data set (trained on and validated on), its files, targets and loaders.

    ``dataset`` is a name of ``slimpose.data.catalog.CATALOG``; its files are derived from ``data_root``
    with the official layout, and the ``*_ann`` / ``*_images`` / ``det_file`` fields override them.
    ``extra_train`` lists further training data sets, each with its own skeleton and weight; ``weight``
    is the main set's. ``skeleton``: ``None`` trains in the main set's own keypoints (every source must share
    them); ``"unified"`` maps every source into the 22-joint unified set (``slimpose.data.unified``: joints a
    source does not label get zero weight) and the model predicts those 22, scored on the validation set in
    its own skeleton.
    """

    dataset: str = "synthetic"
    data_root: str = "data/synthetic"
    train_ann: str | None = None
    train_images: str | None = None
    val_ann: str | None = None
    val_images: str | None = None
    use_gt_bbox: bool = True
    det_file: str | None = None
    det_score_thr: float = 0.0
    input_size: tuple[int, int] = (192, 256)  # (w, h)
    heatmap_size: tuple[int, int] | None = None  # (w, h) of heatmap targets; None: the model's
    sigma: float | None = None  # target Gaussian: heatmap px (heatmap heads, default 2) or SimCC bins (default 6)
    udp: bool = False
    unbiased_encoding: bool = False
    aug: AugmentParams = field(default_factory=AugmentParams)
    batch_size: int = 32  # per process (GPU)
    val_batch_size: int = 32
    workers: int = 2
    val_workers: int = 2
    train_subset: int = 0  # > 0: only the first N training instances (smoke runs)
    val_subset: int = 0
    synthetic_train_images: int = 200
    synthetic_val_images: int = 50
    synthetic_seed: int = 0
    synthetic_image_size: tuple[int, int] = (320, 256)  # (w, h)
    synthetic_preset: str = "default"  # "default" (the benchmark set) or "easy" (SynthConfig.easy())
    weight: float = 1.0
    extra_train: list[DataSource] = field(default_factory=list)
    skeleton: str | None = None  # None: the main set's keypoints; "unified": slimpose.data.unified.UNIFIED


@dataclass
class ModelConfig:
    """A factory name of ``slimpose.models.MODELS`` and keyword overrides passed to it."""

    name: str = "tokenpose_s_v1"
    overrides: dict[str, Any] = field(default_factory=dict)
    pretrained: str | None = None  # checkpoint / state dict loaded into the model before training


@dataclass
class OptimConfig:
    """Adam(W) as in the official configs; ``grad_clip`` > 0 clips the global gradient norm.

    ``loss_spike`` > 0 stops training (``TrainingDivergedError``) when a loss exceeds the median of the last 50
    losses by more than ``loss_spike`` times the median of their absolute values (default 100; 0: off), as a
    NaN / inf loss does.

    ``layer_decay`` > 0 is ViTPose's ``LayerDecayOptimizerConstructor`` for a ViT backbone with ``depth``
    blocks (``engine.builders.build_optimizer``): the rate of ``backbone.blocks.{i}`` is scaled by
    ``layer_decay ** (depth - i)``, of the patch / position embedding by ``layer_decay ** (depth + 1)``,
    and the rest (last norm, head) keeps the base rate; 1-D tensors, biases and ``pos_embed`` get no
    weight decay.
    """

    name: str = "adam"  # 'adam' | 'adamw'
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 0.0
    layer_decay: float = 0.0  # 0: off (ViTPose: 0.8 S, 0.75 B, 0.8 L, 0.85 H)
    loss_spike: float = 100.0  # divergence guard (engine.loop.DEFAULT_LOSS_SPIKE); 0: off


@dataclass
class ScheduleConfig:
    """Epochs, per-iteration linear warm-up and step decay at epoch milestones."""

    epochs: int = 300
    warmup_iters: int = 500
    warmup_ratio: float = 1e-3
    milestones: tuple[int, ...] = (200, 260)
    gamma: float = 0.1
    epoch_decay: float = 1.0  # < 1: the rate is also multiplied by epoch_decay ** epoch (lifters: 0.99)


GEOMETRIES = ("auto", "standard", "udp", "dark")  # conventions.geometry
FLIP_COORD_RULES = ("pixel", "unit")  # conventions.flip_coords
# quarter_bounds, udp_blur and nonpositive: the codecs own their allowed values (validate_config imports them)


@dataclass
class TestConventions:
    """The ``conventions`` section: test-time conventions a checkpoint is predicted with (docs/conversion.md).

    slimpose's own models keep the defaults; ``slimpose convert`` writes those of the official test code of
    the file's repository (``source``), so that a converted checkpoint predicts what the official code
    predicts. ``geometry``: crop warp and heatmap -> crop spacing, ``'auto'`` (``data.udp`` decides),
    ``'standard'`` (MSRA: ``x * input / heatmap``), ``'udp'`` (``x * (input - 1) / (heatmap - 1)``) or
    ``'dark'`` (the DARK authors' ``get_affine_transform`` of TokenPose / PPT: pixel centres at
    ``(size - 1) / 2``, one zoom ``(w - 1) / (box_w - 1)`` for both axes). ``flip_coords``: regression flip
    test, ``'pixel'`` (``x -> w - 1 - x``) or ``'unit'`` (normalised ``x -> 1 - x``, mmpose 0.x
    ``fliplr_regression``); ``flip_swap_scores``: swap the flipped scores left/right before averaging
    (DistilPose officially does not). ``quarter_bounds``: the argmax quarter-pixel step where both
    neighbours exist per axis (``'axis'``) or only where ``1 < x < w - 1`` and ``1 < y < h - 1``
    (``'hrnet'``: HRNet / mmpose 0.x). ``udp_blur``: the DARK-UDP blur, ``'keep_max'`` (zero padded, rescaled
    to each map's maximum: MMPose 1.x) or ``'plain'`` (cv2 in place, reflected border, no rescaling: mmpose 0.x
    ``post_dark_udp``, the ViTPose repository). ``nonpositive``: where a heatmap's maximum is <= 0 the argmax is
    kept (``'keep'``) or replaced by heatmap pixel ``-1`` (``'minus_one'``: mmpose) or ``0`` (``'zero'``:
    HRNet-era ``get_max_preds`` of TokenPose / PPT); the standard and DARK decodings replace it before their
    refinement, the UDP decoding (``UDPHeatmap``) after its DARK-UDP step (before it with ``udp_border`` 'pad*').
    ``udp_border``: the DARK-UDP step where the argmax lies on the map border, ``'skip'`` (that axis keeps its
    argmax) or the official edge-padded full step everywhere, over the batch's maps flattened together (``'pad'``:
    mmpose 0.x ``post_dark_udp``, the ViTPose repository) or per instance (``'pad_instance'``: MMPose 1.x
    ``refine_keypoints_dark_udp``). ``simcc_nonpositive``: SimCC locations whose score is <= 0, kept (``'keep'``)
    or set to bin -1 before the division by the split ratio (``'minus_one'``: MMPose 1.x ``get_simcc_maximum``,
    i.e. ``-1 / split_ratio`` crop px). The flip shift, DARK and rescoring are
    ``shift_heatmap``, ``dark`` and ``score_thr`` / ``nms_thr``.
    """

    __test__ = False  # a config section, not a pytest test class

    source: str = "slimpose"  # whose test code these are (informative)
    geometry: str = "auto"
    flip_coords: str = "pixel"
    flip_swap_scores: bool = True
    quarter_bounds: str = "axis"
    udp_blur: str = "keep_max"
    nonpositive: str = "keep"
    udp_border: str = "skip"
    simcc_nonpositive: str = "keep"


@dataclass
class SimCCParams:
    """SimCC labels, loss and decoding (``slimpose.heads.simcc``); ``data.sigma`` is the label sigma in
    bins (default 6) and the split ratio is the model's. Defaults: MMPose 1.x ``SimCCLabel`` +
    ``KLDiscretLoss`` (Gaussian labels normalised, KL with temperature ``beta``; scores = min of the x / y
    maxima of the raw outputs, no sub-bin refinement). ``score_mode='max'`` with ``from_logits=True``
    (softmax before the maxima) is the official SimCC (leeyegy/SimCC) decoding; ``refine`` adds the
    parabola sub-bin step; ``flip_shift_bins`` moves flipped x vectors back (official: 0, or 1 with
    ``TEST.SHIFT_HEATMAP``). The official styles (``slimpose.config.recipes.simcc``): **SA-SimDR**
    (Gaussian labels, ``loss_bins='mean'``, ``loss_normalizer='batch_keypoints'``, ``flip_average='logits'``,
    ``from_logits=True``, ``score_mode='min_xy'``) and **SimDR** (``smoothing_type='standard'``,
    ``label_smooth_weight=0.1``, ``loss_bins='sum'``, ``loss_normalizer='batch'``, ``flip_average='probs'``,
    ``from_logits=True``, ``score_mode='max_xy'``). ``score_mode='calibrated'`` divides by the label peak."""

    smoothing_type: str = "gaussian"  # 'gaussian' (SimDR*, Gaussian labels) | 'standard' (one-hot)
    label_smooth_weight: float = 0.0
    normalize: bool = True
    beta: float = 1.0
    label_softmax: bool = False
    label_beta: float = 10.0
    score_mode: str = "min_xy"
    from_logits: bool = False
    refine: bool = False
    flip_shift_bins: int = 0
    flip_average: str = "logits"  # flip test: 'logits' (SA-SimDR, MMPose) | 'probs' (SimDR: mean of softmaxes)
    loss_bins: str = "mean"  # KL over the bins: 'mean' (KLDiscretLoss) | 'sum' (SimDR NMTCritierion)
    loss_normalizer: str = "keypoints"  # 'keypoints' (MMPose) | 'batch_keypoints' (SA-SimDR) | 'batch' (SimDR)


@dataclass
class DistilPoseConfig:
    """The ``distill`` section: DistilPose (Ye et al., CVPR 2023) teacher and the weights of Eq. 7.

    ``L = reg L_reg + kt L_KT + vt L_VT + sh L_SH + cs L_CS`` (paper: 1, 5e-4, 5e-4, 1, 1e-2); a weight of
    0 switches a term off (Table 4). ``schedule``: ``constant`` or ``linear_decay`` (the distillation
    terms fade as ``1 - epoch / epochs``, DWPose). The teacher is rebuilt from ``teacher_checkpoint``:
    the architecture its ``model_name`` (else ``teacher_model``) and its ``config.model.overrides`` with
    ``teacher_overrides`` on top.
    """

    teacher_model: str = "distilpose_teacher"
    teacher_overrides: dict[str, Any] = field(default_factory=dict)
    teacher_checkpoint: str | None = None  # usually given by ``--teacher``
    reg: float = 1.0
    kt: float = 5e-4
    vt: float = 5e-4
    sh: float = 1.0
    cs: float = 1e-2
    check_teacher: bool = True  # dry-run both models once and compare token shapes before training
    schedule: str = "constant"

    @property
    def uses_teacher(self) -> bool:
        return any(w > 0 for w in (self.kt, self.vt, self.sh, self.cs))

    @property
    def score_source(self) -> str:
        """'confidence' when L_CS trains the confidence channel, else 'constant' (scores = 1)."""
        return "confidence" if self.cs > 0 else "constant"


@dataclass
class SDPoseConfig:
    """The ``sdpose`` section: SDPose (Chen et al., CVPR 2024) self-distillation weights of Eq. 3.

    ``L = task sum_i L_task(P_i) + kt sum_i MSE(KT_i, KT_i+1) + vt sum_i MSE(VT_i, VT_i+1)`` over the
    multi-cycled transformer's cycles (paper: 1, 5e-6, 5e-6). ``detach_teacher=False`` is the official
    behaviour (the later cycle is not detached).
    """

    task: float = 1.0
    kt: float = 5e-6
    vt: float = 5e-6
    detach_teacher: bool = False
    schedule: str = "constant"


@dataclass
class MultiKDConfig:
    """The ``multikd`` section: SimCC / SimDR distillation (``slimpose.distillation.multikd``).

    ``L = task L_task + s(epoch) (vkd L_vkd + fkd L_fkd)``; a weight of 0 switches a term off. The seed's
    Table 3 switches: ``cross_stage`` (pairs (l, m >= l), else m = l), ``mft`` (ReviewKD-style fusion of the
    deeper student stages), ``wa`` (adaptive pair weights gamma), ``vkd`` (> 0: vanilla KD on the x / y
    bins). ``student_stages`` / ``teacher_stages``: submodule names to tap (empty: the models'
    ``feature_stages``). DWPose's stage 1 is ``fkd=7e-5, distance='sum'`` on the last stages, ``vkd=0.1,
    vkd_normalizer='batch_keypoints'``, ``schedule='linear_decay'``; its stage 2 (head self-distillation) is
    ``freeze_backbone`` + ``reinit_head`` with the stage-1 checkpoint as teacher and as ``model.pretrained``.
    """

    teacher_model: str = "hrnet_w32_simcc"
    teacher_overrides: dict[str, Any] = field(default_factory=dict)
    teacher_checkpoint: str | None = None  # usually given by ``--teacher``
    check_teacher: bool = True  # dry-run: the teacher's bins must match the student's
    task: float = 1.0
    vkd: float = 5e-4  # the seed gives no weights: about the SA-SimDR task loss at the start (docs/multikd.md)
    vkd_beta: float = 1.0
    vkd_normalizer: str = "batch"  # 'batch' (the seed's 1/N) | 'batch_keypoints' (MMPose KDLoss)
    fkd: float = 5e-4
    cross_stage: bool = True
    mft: bool = True
    wa: bool = True
    student_stages: list[str] = field(default_factory=list)
    teacher_stages: list[str] = field(default_factory=list)
    distance: str = "mse"  # 'mse' (mean) | 'sum' (DWPose FeaLoss)
    wa_pool: int = 4
    wa_dim: int = 64
    wa_temperature: float = 1.0
    freeze_backbone: bool = False  # DWPose stage 2: only the head trains
    reinit_head: bool = False  # DWPose stage 2: a fresh head on the frozen stage-1 features
    schedule: str = "constant"

    @property
    def uses_teacher(self) -> bool:
        return self.vkd > 0 or self.fkd > 0


@dataclass
class KnowledgeTokenConfig:
    """The ``knowledge_token`` section: ViTPose's knowledge-token distillation (Xu et al., NeurIPS 2022, Sec. 3.4,
    Table 8; ``slimpose.distillation.knowledge_token``, ``docs/knowledge_token.md``).

    ``stage='token'`` (stage 1): one learnable token ``t`` (1, 1, C_teacher) before the patch tokens of the
    frozen teacher ``teacher_checkpoint`` (``model.name`` names that teacher); only ``t`` trains, with the
    teacher's own heatmap loss against the ground truth. The run's ``best.pth`` / ``last.pth`` is the token file.
    ``stage='student'`` (stage 2): the frozen ``t*`` of ``token_path`` before the student's patch tokens
    (``use_token``); ``L = task MSE(S({t*; X}), K_gt) + output_kd MSE(S, K_T)`` with ``K_T`` from
    ``teacher_checkpoint`` (the plain teacher as in the paper, or with its token: ``teacher_with_token``).
    ``projection``: ``'auto'`` a linear C_t -> C_s trained with the student when the widths differ (none when
    equal), ``'linear'`` always, ``'none'`` equal widths only. ``token_dim`` (0: the token file's) rebuilds a
    student checkpoint without its token file; ``check_teacher``: the token must come from ``teacher_checkpoint``.
    """

    stage: str = "token"  # 'token' (stage 1) | 'student' (stage 2)
    teacher_model: str = "vitpose_l"
    teacher_overrides: dict[str, Any] = field(default_factory=dict)
    teacher_checkpoint: str | None = None  # usually given by ``--teacher``
    check_teacher: bool = True
    token_path: str | None = None  # stage 2: a token file or the stage-1 run's best.pth / last.pth
    token_dim: int = 0
    use_token: bool = True  # stage 2 without the token: plain output distillation (a Table 8 row)
    projection: str = "auto"
    task: float = 1.0
    output_kd: float = 0.0  # stage 2: weight of MSE(S, K_T) (0: off)
    teacher_with_token: bool = False  # K_T from the teacher with t* (the paper's output distillation: without)
    token_init_std: float = 0.02  # stage 1: t ~ trunc_normal(0, std), as ViT's class token
    schedule: str = "constant"

    @property
    def uses_teacher(self) -> bool:
        return self.stage == "token" or self.output_kd > 0


@dataclass
class TrainConfig:
    """Everything a training run needs."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    name: str = "run"
    seed: int = 0
    work_dir: str = "work_dirs/run"
    device: str = "auto"  # 'auto' | 'cpu' | 'cuda'
    amp: str = "none"  # 'none' | 'fp16' | 'bf16' (CUDA only)
    eval_interval: int = 10  # epochs; the last epoch is always evaluated
    best_metric: str = ""  # the metric deciding best.pth ('' = the data set's primary metric)
    best_mode: str = ""  # 'max' | 'min' ('' = the metric's own direction)
    flip_test: bool = True
    shift_heatmap: bool = True  # 1-px shift of flipped-back heatmaps (False for UDP)
    dark: bool = True  # DARK (unbiased) decoding at test time
    ohkm: bool = False
    ohkm_topk: int = 8
    smooth_l1_beta: float = 1.0  # regression heads' Smooth L1 (DistilPose L_reg)
    sync_bn: bool = False
    find_unused_parameters: bool = False  # DDP option, for tasks whose forward skips some parameters
    log_interval: int = 50
    tensorboard: bool = True
    deterministic: bool = False
    num_threads: int = 0  # > 0: torch.set_num_threads (CPU runs)
    nms_thr: float = 0.9
    score_thr: float = 0.2
    simcc: SimCCParams | None = None
    distill: DistilPoseConfig | None = None
    sdpose: SDPoseConfig | None = None
    multikd: MultiKDConfig | None = None
    knowledge_token: KnowledgeTokenConfig | None = None
    conventions: TestConventions = field(default_factory=TestConventions)


# ----------------------------------------------------------------------------------------------- validation


def crop_warp(cfg: TrainConfig) -> bool | str:
    """The crop warp of ``cfg`` as the transforms take it: ``False`` (standard), ``True`` (UDP) or ``'dark'``."""
    g = cfg.conventions.geometry
    return bool(cfg.data.udp) if g == "auto" else {"standard": False, "udp": True, "dark": "dark"}[g]


def validate_config(cfg: TrainConfig, where: str = "config") -> TrainConfig:
    """Raise a SlimposeInputError naming ``where`` and the field for values that cannot work."""
    from slimpose.data.catalog import CATALOG
    from slimpose.data.synth import SYNTH_PRESETS

    def bad(key: str, msg: str) -> SlimposeInputError:
        return SlimposeInputError(f"{where}: {key}: {msg}")

    d = cfg.data
    sources = [("data.dataset", d.dataset, d.weight)]
    sources += [(f"data.extra_train[{i}].dataset", s.dataset, s.weight) for i, s in enumerate(d.extra_train)]
    for key, name, weight in sources:
        if name not in CATALOG:
            raise bad(key, f"unknown data set {name!r} (choose from {', '.join(CATALOG)})")
        if not weight > 0:
            raise bad(key.replace("dataset", "weight"), f"must be positive, got {weight}")
    roots: dict[str, str] = {}
    for key, name, root in [("data", d.dataset, d.data_root)] + [
            (f"data.extra_train[{i}]", s.dataset, s.data_root) for i, s in enumerate(d.extra_train)]:
        if CATALOG[name].synthetic:
            other = roots.setdefault(os.path.abspath(os.path.expanduser(root)), key)
            if other != key:
                raise bad(f"{key}.data_root", f"{root!r} is also {other}.data_root: each synthetic data set "
                          "needs its own folder (their images would overwrite each other)")
    if d.skeleton not in (None, "unified"):
        raise bad("data.skeleton", f"{d.skeleton!r} is not 'unified' (or null for the data set's own keypoints)")
    if d.skeleton == "unified":
        from slimpose.data.unified import MAPPINGS

        for key, name, _ in sources:
            if CATALOG[name].info.name not in MAPPINGS:
                raise bad(key, f"{name!r} has no mapping into the unified skeleton (known: {', '.join(MAPPINGS)})")
    if d.synthetic_preset not in SYNTH_PRESETS:
        raise bad("data.synthetic_preset", f"{d.synthetic_preset!r} is not one of {', '.join(SYNTH_PRESETS)}")
    if cfg.amp not in AMP_MODES:
        raise bad("amp", f"{cfg.amp!r} is not one of {', '.join(AMP_MODES)}")
    if cfg.optim.name not in OPTIMIZERS:
        raise bad("optim.name", f"{cfg.optim.name!r} is not 'adam' or 'adamw'")
    if cfg.best_mode not in ("", "max", "min"):
        raise bad("best_mode", f"{cfg.best_mode!r} is not 'max' or 'min' (or '' for the metric's own)")
    for key, size in (("data.input_size", d.input_size), ("data.heatmap_size", d.heatmap_size)):
        if size is not None and (len(size) != 2 or min(size) <= 0):
            raise bad(key, f"expected two positive sizes (w, h), got {size}")
    positive = {
        "data.batch_size": d.batch_size,
        "data.val_batch_size": d.val_batch_size,
        "schedule.epochs": cfg.schedule.epochs,
        "eval_interval": cfg.eval_interval,
        "log_interval": cfg.log_interval,
        "ohkm_topk": cfg.ohkm_topk,
    }
    for key, value in positive.items():
        if value <= 0:
            raise bad(key, f"must be positive, got {value}")
    if d.sigma is not None and not d.sigma > 0:
        raise bad("data.sigma", f"must be positive, got {d.sigma}")
    if cfg.optim.lr <= 0:
        raise bad("optim.lr", f"must be positive, got {cfg.optim.lr}")
    if not 0.0 < cfg.schedule.epoch_decay <= 1.0:
        raise bad("schedule.epoch_decay", f"must be in (0, 1] (1: off), got {cfg.schedule.epoch_decay}")
    if not cfg.optim.loss_spike >= 0:
        raise bad("optim.loss_spike", f"must be >= 0 (0: off), got {cfg.optim.loss_spike}")
    if not 0.0 <= cfg.optim.layer_decay <= 1.0:
        raise bad("optim.layer_decay", f"must be in [0, 1] (0: off), got {cfg.optim.layer_decay}")
    from slimpose.codecs._gaussian import NONPOSITIVE, QUARTER_BOUNDS
    from slimpose.codecs._gaussian import UDP_BORDERS
    from slimpose.codecs.simcc import SIMCC_NONPOSITIVE
    from slimpose.codecs.udp_heatmap import BLURS as UDP_BLURS

    for name, value, allowed in (("geometry", cfg.conventions.geometry, GEOMETRIES),
                                 ("flip_coords", cfg.conventions.flip_coords, FLIP_COORD_RULES),
                                 ("quarter_bounds", cfg.conventions.quarter_bounds, QUARTER_BOUNDS),
                                 ("udp_blur", cfg.conventions.udp_blur, UDP_BLURS),
                                 ("nonpositive", cfg.conventions.nonpositive, NONPOSITIVE),
                                 ("udp_border", cfg.conventions.udp_border, UDP_BORDERS),
                                 ("simcc_nonpositive", cfg.conventions.simcc_nonpositive, SIMCC_NONPOSITIVE)):
        if value not in allowed:
            raise bad(f"conventions.{name}", f"{value!r} is not one of {', '.join(allowed)}")
    if cfg.simcc is not None:
        from slimpose.codecs.simcc import SCORE_MODES, SMOOTHING_TYPES

        if cfg.simcc.smoothing_type not in SMOOTHING_TYPES:
            raise bad("simcc.smoothing_type", f"{cfg.simcc.smoothing_type!r} is not one of {SMOOTHING_TYPES}")
        from slimpose.heads.simcc import FLIP_AVERAGES
        from slimpose.losses.simcc import BIN_REDUCTIONS, NORMALIZERS

        if cfg.simcc.score_mode not in SCORE_MODES:
            raise bad("simcc.score_mode", f"{cfg.simcc.score_mode!r} is not one of {SCORE_MODES}")
        if cfg.simcc.score_mode == "calibrated" and not cfg.simcc.from_logits:
            raise bad("simcc.score_mode", "'calibrated' needs simcc.from_logits=true (softmax probabilities)")
        for name, value, allowed in (("flip_average", cfg.simcc.flip_average, FLIP_AVERAGES),
                                     ("loss_bins", cfg.simcc.loss_bins, BIN_REDUCTIONS),
                                     ("loss_normalizer", cfg.simcc.loss_normalizer, NORMALIZERS)):
            if value not in allowed:
                raise bad(f"simcc.{name}", f"{value!r} is not one of {allowed}")
    sections = {"distill": cfg.distill, "sdpose": cfg.sdpose, "multikd": cfg.multikd,
                "knowledge_token": cfg.knowledge_token}
    present = [k for k, v in sections.items() if v is not None]
    if len(present) > 1:
        raise bad(" and ".join(present), "one distillation method per run")
    for name, section in sections.items():
        if section is None:
            continue
        for f in dataclasses.fields(section):
            value = getattr(section, f.name)
            if isinstance(value, float) and value < 0:
                raise bad(f"{name}.{f.name}", f"must be >= 0, got {value}")
        if section.schedule not in DISTILL_SCHEDULES:
            raise bad(f"{name}.schedule", f"{section.schedule!r} is not one of {', '.join(DISTILL_SCHEDULES)}")
    if cfg.multikd is not None:
        mk = cfg.multikd
        if mk.vkd_normalizer not in VKD_NORMALIZERS:
            raise bad("multikd.vkd_normalizer", f"{mk.vkd_normalizer!r} is not one of {VKD_NORMALIZERS}")
        if mk.distance not in FEATURE_DISTANCES:
            raise bad("multikd.distance", f"{mk.distance!r} is not one of {FEATURE_DISTANCES}")
        if mk.wa_pool < 1 or mk.wa_dim < 1 or not mk.wa_temperature > 0:
            raise bad("multikd", "wa_pool and wa_dim must be >= 1 and wa_temperature > 0")
        if mk.task == 0 and not mk.uses_teacher:
            raise bad("multikd", "every loss weight of the multikd section is 0")
    if cfg.knowledge_token is not None:
        _validate_knowledge_token(cfg.knowledge_token, bad)
    if cfg.distill is not None and cfg.distill.reg == 0 and not cfg.distill.uses_teacher:
        raise bad("distill", "every loss weight of the distill section is 0")
    if cfg.distill is not None and cfg.distill.cs <= 0 and cfg.model.overrides.get("score_source") == "confidence":
        raise bad("model.overrides.score_source",
                  "'confidence' needs L_CS (distill.cs > 0): without it the confidence channel is untrained and "
                  "ruins AP (yshMars/DistilPose#2); use 'constant'")
    return cfg


def _validate_knowledge_token(kt: KnowledgeTokenConfig, bad: Any) -> None:
    """Value domains of the ``knowledge_token`` section (files are checked when the run is built)."""
    if kt.stage not in KT_STAGES:
        raise bad("knowledge_token.stage", f"{kt.stage!r} is not one of {', '.join(KT_STAGES)}")
    if kt.projection not in KT_PROJECTIONS:
        raise bad("knowledge_token.projection", f"{kt.projection!r} is not one of {', '.join(KT_PROJECTIONS)}")
    if kt.token_dim < 0:
        raise bad("knowledge_token.token_dim", f"must be >= 0 (0: the token file's width), got {kt.token_dim}")
    if kt.stage == "token":
        if kt.output_kd > 0 or kt.teacher_with_token or not kt.use_token:
            raise bad("knowledge_token", "stage 'token' trains only the token with the ground-truth loss; "
                      "output_kd, teacher_with_token and use_token=false are for stage 'student'")
        if kt.task <= 0:
            raise bad("knowledge_token.task", "stage 'token' is trained by the task loss alone: must be > 0")
    elif kt.task == 0 and kt.output_kd == 0:
        raise bad("knowledge_token", "every loss weight of the knowledge_token section is 0")
    elif not kt.use_token and kt.output_kd == 0:
        raise bad("knowledge_token", "use_token=false and output_kd=0 distil nothing (train the plain student "
                  "without the knowledge_token section)")
    if kt.teacher_with_token and kt.output_kd == 0:
        raise bad("knowledge_token.teacher_with_token",
                  "is the teacher of the output distillation: needs output_kd > 0")
