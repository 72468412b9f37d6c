"""The unified keypoint set (UniTransPose): mappings of COCO, OCHuman, MPII, AIC and CrowdPose into it and back."""

import json

import numpy as np
import pytest
import torch

from _shared import SHARED_REAL
from slimpose.data.metainfo import AIC, COCO, CROWDPOSE, MPII
from slimpose.data.unified import MAPPINGS, SOURCES, UNIFIED, from_unified, labelled_mask, to_unified
from slimpose.losses.heatmap import KeypointMSELoss

needs_real = pytest.mark.skipif(not SHARED_REAL.is_dir(), reason=f"{SHARED_REAL} is missing")
COCO_STYLE = {"coco": "coco/test_coco.json", "ochuman": "ochuman/test_ochuman.json", "aic": "aic/test_aic.json",
              "crowdpose": "crowdpose/test_crowdpose.json"}


def _real_keypoints(dataset: str) -> np.ndarray:
    if dataset == "mpii":
        rows = json.loads((SHARED_REAL / "mpii" / "test_mpii.json").read_text())
        return np.stack([np.concatenate([np.asarray(r["joints"], float), np.asarray(r["joints_vis"], float)[:, None]],
                                        axis=1) for r in rows])
    data = json.loads((SHARED_REAL / COCO_STYLE[dataset]).read_text())
    k = SOURCES[dataset].num_keypoints
    return np.stack([np.asarray(a["keypoints"], float).reshape(k, 3) for a in data["annotations"]])


def test_the_set_its_names_and_what_each_data_set_labels():
    assert UNIFIED.num_keypoints == 22 and len(set(UNIFIED.keypoint_names)) == 22
    assert UNIFIED.keypoint_names[:17] == COCO.keypoint_names
    assert UNIFIED.keypoint_names[17:] == ("head_top", "neck", "upper_neck", "thorax", "pelvis")
    assert UNIFIED.sigmas[:17] == COCO.sigmas
    assert UNIFIED.sigmas[17] == CROWDPOSE.sigmas[CROWDPOSE.keypoint_names.index("top_head")]
    assert UNIFIED.sigmas[21] == MPII.sigmas[MPII.keypoint_names.index("pelvis")]
    assert labelled_mask("coco").sum() == 17 and labelled_mask("mpii").sum() == 16
    assert [UNIFIED.keypoint_names[i] for i in np.flatnonzero(~labelled_mask("aic"))] == [
        "nose", "left_eye", "right_eye", "left_ear", "right_ear", "upper_neck", "thorax", "pelvis"]
    # every joint keeps its meaning: the names agree (CrowdPose's top_head is the head top)
    for name, info in SOURCES.items():
        for i, j in enumerate(MAPPINGS[name]):
            want = "head_top" if info.keypoint_names[i] == "top_head" else info.keypoint_names[i]
            assert UNIFIED.keypoint_names[j] == want
    assert MAPPINGS["aic"][AIC.keypoint_names.index("neck")] == MAPPINGS["crowdpose"][CROWDPOSE.keypoint_names.index("neck")]
    assert MAPPINGS["mpii"][MPII.keypoint_names.index("upper_neck")] != MAPPINGS["aic"][AIC.keypoint_names.index("neck")]


def test_flipping_commutes_with_the_mapping():
    uni = UNIFIED.flip_index
    for name, info in SOURCES.items():
        m, own = MAPPINGS[name], info.flip_index
        assert [m[own[i]] for i in range(len(m))] == [uni[m[i]] for i in range(len(m))], name


@needs_real
@pytest.mark.parametrize("dataset", ["coco", "ochuman", "mpii", "aic", "crowdpose"])
def test_real_annotations_map_into_the_set_and_back_exactly(dataset):
    kp = _real_keypoints(dataset)
    uni = to_unified(kp, dataset)
    assert uni.shape == (kp.shape[0], 22, 3)
    np.testing.assert_array_equal(from_unified(uni, dataset), kp)
    np.testing.assert_array_equal(uni[:, ~labelled_mask(dataset)], 0.0)  # unlabelled: visibility 0
    assert (uni[:, labelled_mask(dataset), 2] > 0).sum() == (kp[..., 2] > 0).sum()
    with pytest.raises(ValueError, match="must be"):
        to_unified(kp[:, :-1], dataset)
    with pytest.raises(ValueError, match="unknown data set"):
        to_unified(kp, "jrdb")


def test_joints_a_data_set_does_not_label_give_zero_loss_and_zero_gradient():
    mask = torch.from_numpy(labelled_mask("mpii"))
    weight = mask.float()[None]  # (1, 22): the target weight of an MPII sample in the unified set
    pred = torch.randn(1, 22, 8, 6, requires_grad=True)
    target = torch.rand(1, 22, 8, 6)
    loss = KeypointMSELoss(use_target_weight=True)(pred, target, weight)
    loss.backward()
    assert torch.all(pred.grad[0, ~mask] == 0) and torch.all(pred.grad[0, mask].abs().sum((1, 2)) > 0)
    changed = pred.detach().clone()
    changed[0, ~mask] += 100.0  # whatever the model predicts for the unlabelled joints
    assert KeypointMSELoss(use_target_weight=True)(changed, target, weight).item() == pytest.approx(loss.item())
