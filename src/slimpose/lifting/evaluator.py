"""Validation of a lifter: every test sequence lifted whole, scored in millimetres.

``LiftEvaluator.run(task)`` is what the training loop's ``EvalHook`` calls (the same contract as the 2-D
``slimpose.engine.evaluator.Evaluator``): each sequence is lifted by ``lift_sequence`` (windows of the model's
clip length tiling the sequence, optional flip test), every frame is scored once, root-relative, with the
metrics of ``slimpose.lifting.metrics``: MPJPE, P-MPJPE, N-MPJPE, MPJVE and the acceleration error ACCEL (per sequence) and their action-wise
means (``MPJPE_actionwise``, ...: the Human3.6M protocol, mean over action groups); with ``pck`` (MPI-INF-3DHP)
also ``PCK`` (150 mm) and ``AUC`` on its 14 joints. Poses are made relative to each sequence's root joint;
sequences with a ``valid`` mask are scored on their valid frames only (MPJVE within each run of consecutive
valid frames). The primary number is MPJPE (lower is better). Under DDP every rank lifts its share of the
sequences (``sequences[rank::world]``); rank 0 gathers and scores them and broadcasts the numbers. ``predictions_<tag>.npz`` (``poses_3d`` mm, ``sequence``, ``action``) and
``metrics_<tag>.json`` are written to ``out_dir``; ``slimpose evaluate3d`` rescores the npz.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from slimpose.engine.distributed import all_gather_object, broadcast_object, get_rank, get_world_size, is_main_process
from slimpose.lifting.data.sequence import Sequence3D
from slimpose.utils.io import write_json_atomic


class LiftMetric:
    """What decides the best lifting checkpoint: ``MPJPE``, lower is better. ``mode_of(name)`` is the direction
    of any of its numbers: higher is better for ``PCK`` and ``AUC``, lower for every error."""

    primary = "MPJPE"
    mode = "min"

    @staticmethod
    def mode_of(name: str) -> str:
        return "max" if name in ("PCK", "AUC") else "min"


def sequence_name(seq: Sequence3D) -> str:
    return f"{seq.subject}/{seq.action}/{seq.camera_index}"


def guidance_intrinsics(model: torch.nn.Module, seq: Sequence3D) -> np.ndarray | None:
    """The sequence's camera intrinsics when the lifter guides its sampling with a reprojection term (StarPose's
    STPG with ``lambda_p > 0``), else ``None``."""
    if not getattr(model, "uses_intrinsics", False) or seq.camera is None:
        return None
    return np.asarray(seq.camera.intrinsic, np.float32)


class LiftEvaluator:
    """Scores a lifter on ``sequences`` (each rank lifts its share; rank 0 scores, every rank gets the numbers)."""

    metric = LiftMetric()

    def __init__(self, sequences: Sequence[Sequence3D], out_dir: str | Path, flip_test: bool = True,
                 batch_size: int = 16, device: torch.device | str = "cpu", layout: Any = None,
                 pck: bool = False) -> None:
        from slimpose.lifting.data.clips import H36M_LAYOUT

        self.sequences = list(sequences)
        self.layout = layout if layout is not None else H36M_LAYOUT
        self.pck = pck
        self.out_dir = Path(out_dir)
        self.flip_test = flip_test
        self.batch_size = int(batch_size)
        self.device = torch.device(device)

    def predict(self, model: torch.nn.Module, autocast: Callable[[], Any] | None = None,
                progress: bool = False, sequences: Sequence[Sequence3D] | None = None) -> list[np.ndarray]:
        """(T, J, 3) metres per sequence (of ``sequences``, default all)."""
        from slimpose.lifting.inference import lift_sequence, model_output_frames

        seqs: Any = self.sequences if sequences is None else sequences
        if progress:
            from tqdm import tqdm

            seqs = tqdm(seqs, desc="lift", leave=False, dynamic_ncols=True)
        ctx = autocast if autocast is not None else contextlib.nullcontext
        was_training = model.training
        model.eval()
        try:
            with ctx():
                seq2frame = model_output_frames(model, self.device) == 1 < model.input_spec.num_frames
                return [lift_sequence(model, s.keypoints_2d, flip_test=self.flip_test, batch_size=self.batch_size,
                                      left=self.layout.left, right=self.layout.right, device=self.device,
                                      seq2frame=seq2frame, intrinsics=guidance_intrinsics(model, s)) for s in seqs]
        finally:
            model.train(was_training)

    def score(self, preds: Sequence[np.ndarray], tag: str = "val") -> dict[str, float]:
        from slimpose.lifting.metrics import evaluate_3dhp, evaluate_poses_3d
        from slimpose.lifting.data.h36m import write_npz

        keep = [np.ones(s.num_frames, bool) if s.valid is None else np.asarray(s.valid, bool) for s in self.sequences]
        pred = np.concatenate([(p - p[:, s.root_joint:s.root_joint + 1])[k] for p, s, k in
                               zip((np.asarray(p, np.float64) for p in preds), self.sequences, keep)]) * 1000.0
        gt = np.concatenate([(s.poses_3d - s.poses_3d[:, s.root_joint:s.root_joint + 1])[k].astype(np.float64)
                             for s, k in zip(self.sequences, keep)]) * 1000.0
        # one id per run of consecutive scored frames: MPJVE never differences across a dropped (invalid) frame
        names = np.concatenate([[f"{sequence_name(s)}#{r}" for r in np.cumsum(np.diff(k.astype(int), prepend=0) == 1)[k]]
                                for s, k in zip(self.sequences, keep)])
        actions = np.concatenate([[s.action] * int(k.sum()) for s, k in zip(self.sequences, keep)])
        res = evaluate_poses_3d(pred, gt, sequence=names, action=actions)
        metrics = {k: float(res[k]) for k in ("MPJPE", "P-MPJPE", "N-MPJPE", "MPJVE", "ACCEL") if res[k] is not None}
        for k in ("MPJPE", "P-MPJPE", "N-MPJPE", "MPJVE"):
            if res["actions"].get(k) is not None:
                metrics[f"{k}_actionwise"] = float(res["actions"][k])
        if self.pck:
            hp = evaluate_3dhp(pred, gt)
            metrics["PCK"], metrics["AUC"] = float(hp["PCK"]), float(hp["AUC"])
        metrics["num_frames"] = float(res["num_frames"])
        metrics["num_sequences"] = float(len(self.sequences))
        self.out_dir.mkdir(parents=True, exist_ok=True)
        write_npz(self.out_dir / f"predictions_{tag}.npz",
                  {"poses_3d": pred.astype(np.float32), "sequence": names.astype(str), "action": actions.astype(str)})
        write_json_atomic(self.out_dir / f"metrics_{tag}.json", metrics, indent=2)
        return metrics

    def run(self, task: torch.nn.Module, tag: str = "val", autocast: Callable[[], Any] | None = None,
            progress: bool = False) -> dict[str, float]:
        rank, world = get_rank(), get_world_size()
        model = getattr(task, "model", task)
        mine = list(range(rank, len(self.sequences), world))
        local = dict(zip(mine, self.predict(model, autocast, progress and rank == 0,
                                            [self.sequences[i] for i in mine])))
        metrics: dict[str, float] | None = None
        gathered = all_gather_object(local) if world > 1 else [local]
        if is_main_process():
            preds = {i: p for part in gathered for i, p in part.items()}
            metrics = self.score([preds[i] for i in range(len(self.sequences))], tag)
        return broadcast_object(metrics)


__all__ = ["LiftEvaluator", "LiftMetric", "guidance_intrinsics", "sequence_name"]
