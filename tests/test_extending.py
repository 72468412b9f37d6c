"""The two extension examples of docs/architecture.md, run: a new kind of head (integral regression on
heatmaps) and a new distillation term (DWPose-style logit distillation of SimCC vectors). Each plugs into
the existing task, distiller, loop, evaluator and export without touching them."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from slimpose.codecs.flip import flip_heatmaps_back
from slimpose.codecs.regression import RegressionLabel
from slimpose.distillation.distiller import Distiller, DistillTerm
from slimpose.engine.tasks import TopDownTask
from slimpose.export import DecodedModel
from slimpose.heads import Head, default_head
from slimpose.models import create_model
from slimpose.models.stemnet import StemNet

torch.set_num_threads(1)
INPUT = (48, 64)


# ------------------------------------------------------------------ a new head: integral regression


class _SoftArgmax(nn.Module):
    """Heatmaps (B,K,h,w) -> normalised coordinates (B,K,2) by soft-argmax, scores = heatmap maxima."""

    def forward(self, heatmaps):
        b, k, h, w = heatmaps.shape
        p = heatmaps.flatten(2).softmax(-1).view(b, k, h, w)
        xs = torch.arange(w, dtype=p.dtype, device=p.device)
        ys = torch.arange(h, dtype=p.dtype, device=p.device)
        x = (p.sum(2) * xs).sum(-1)
        y = (p.sum(3) * ys).sum(-1)
        return torch.stack(((x + 0.5) / w, (y + 0.5) / h), dim=-1), heatmaps.flatten(2).amax(-1)


class _PixelDecode(nn.Module):
    def __init__(self, soft_argmax, input_size):
        super().__init__()
        self.soft_argmax = soft_argmax
        self.register_buffer("size", torch.tensor([float(s) for s in input_size]), persistent=False)

    def forward(self, heatmaps):
        coords, scores = self.soft_argmax(heatmaps)
        return coords * self.size, scores


class IntegralHead(Head):
    """Integral regression (Sun et al., ECCV 2018): heatmap outputs, soft-argmax coordinates, L1 loss."""

    output_names = ("heatmaps",)

    def __init__(self, input_size):
        super().__init__(RegressionLabel(input_size))  # targets: normalised coordinates
        self.soft_argmax = _SoftArgmax()

    @classmethod
    def from_config(cls, cfg, model):
        return cls(tuple(model.input_size))

    def loss(self, output, batch):
        coords, _ = self.soft_argmax(output)
        loss = ((coords - batch["target"]).abs() * batch["target_weight"][..., None]).mean()
        return loss, {"loss_integral": loss.detach()}

    def flip_back(self, output, flip_pairs):
        return flip_heatmaps_back(output, flip_pairs, shift=False)

    def decode(self, output):
        keypoints, scores = self.export_decoder()(output)
        return keypoints.detach().cpu().numpy(), scores.detach().cpu().numpy()

    def export_decoder(self):
        return _PixelDecode(self.soft_argmax, self.codec.input_size)


def test_a_new_head_plugs_into_task_prediction_and_export():
    torch.manual_seed(0)
    model = create_model("tokenpose_s_v1", input_size=INPUT, depth=1, dim=32, num_heads=2)
    head = IntegralHead(INPUT)
    task = TopDownTask(model, head)
    kps = np.random.default_rng(0).uniform(8, 40, size=(4, 17, 2)).astype(np.float32)
    enc = [head.codec.encode(k, np.ones(17, np.float32)) for k in kps]
    batch = {"image": torch.randn(4, 3, 64, 48), "target": torch.as_tensor(np.stack([e["target"] for e in enc])),
             "target_weight": torch.as_tensor(np.stack([e["target_weight"] for e in enc]))}
    opt = torch.optim.Adam(task.parameters(), lr=1e-3)
    first = None
    for _ in range(10):
        loss, logs = task(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < first and set(logs) == {"loss_integral"}
    kp, sc = task.predict(batch["image"], flip_pairs=[(1, 2)])
    assert kp.shape == (4, 17, 2) and sc.shape == (4, 17)
    with torch.no_grad():
        exported = DecodedModel(model, head.export_decoder())(batch["image"])[0].numpy()
    np.testing.assert_allclose(task.predict(batch["image"])[0], exported, atol=1e-5)


# ------------------------------------------------------------------ a new distillation term: SimCC logit KD


class SimCCLogitTerm(DistillTerm):
    """DWPose's logit distillation: per axis, KL(softmax(teacher / tau) || softmax(student / tau)) over the
    bins, summed over keypoints and averaged over the batch."""

    name = "logit"

    def __init__(self, weight, tau=1.0):
        super().__init__(weight)
        self.tau = tau

    def forward(self, student, teacher, batch):
        loss = student.output[0].new_zeros(())
        for s, t in zip(student.output, teacher.output):
            log_p = F.log_softmax(s / self.tau, dim=-1)
            q = F.softmax(t / self.tau, dim=-1)
            loss = loss + F.kl_div(log_p, q, reduction="sum") / s.shape[0]
        return loss


def _simcc(seed):
    torch.manual_seed(seed)
    return create_model("simcc_res50", input_size=INPUT, backbone=StemNet(num_blocks=1), num_deconv_layers=0)


def test_a_new_term_plugs_into_the_distiller():
    student, teacher = _simcc(0), _simcc(1)
    with torch.no_grad():  # a teacher with peaked distributions (freshly initialised ones are almost flat)
        teacher.head.mlp_head_x.bias.copy_(torch.linspace(-3, 3, 96))
        teacher.head.mlp_head_y.bias.copy_(torch.linspace(3, -3, 128))
    head = default_head(student)
    task = Distiller(student, head, [SimCCLogitTerm(1.0)], teacher=teacher, task_weight=0.0)
    images = torch.randn(2, 3, 64, 48)
    batch = {"image": images}
    task.train()
    first, logs = task(batch)
    assert set(logs) == {"loss_logit"} and first.item() > 0
    opt = torch.optim.Adam(task.parameters(), lr=1e-2)
    for _ in range(10):
        loss, _ = task(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first.item()  # the student moves towards the frozen teacher
    assert all(p.grad is None for p in teacher.parameters())
    same = Distiller(teacher, head, [SimCCLogitTerm(1.0)], teacher=teacher, task_weight=0.0)
    assert same(batch)[0].item() < 1e-4 * first.item()  # a student equal to its teacher: nothing to learn
