"""Dataset metadata: sizes, official sigmas, flip pairs consistent with the keypoint names."""

import dataclasses
import json

import numpy as np
import pytest

from slimpose.data.metainfo import (AIC, COCO, CROWDPOSE, DATASETS, JHMDB, MPII, OCHUMAN, POSETRACK18,
                                    DatasetInfo)
from _shared import SHARED_REAL

REAL = SHARED_REAL


def test_keypoint_counts_and_registry():
    expected = {"coco": 17, "crowdpose": 14, "aic": 14, "mpii": 16, "ochuman": 17, "posetrack18": 17,
                "jhmdb": 15}
    assert {name: info.num_keypoints for name, info in DATASETS.items()} == expected
    assert DATASETS["coco"] is COCO and DATASETS["mpii"] is MPII and DATASETS["aic"] is AIC
    for name, info in DATASETS.items():
        assert info.name == name
        assert len(info.sigmas) == len(info.joint_weights) == len(info.keypoint_colors) == info.num_keypoints
        assert len(info.skeleton) == len(info.skeleton_colors) > 0


def test_official_sigmas():
    coco = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89,
                     .89]) / 10
    np.testing.assert_allclose(COCO.sigmas, coco, atol=1e-12)
    np.testing.assert_allclose(OCHUMAN.sigmas, coco, atol=1e-12)
    np.testing.assert_allclose(POSETRACK18.sigmas, coco, atol=1e-12)
    np.testing.assert_allclose(CROWDPOSE.sigmas[:12], coco[5:], atol=1e-12)  # limbs as COCO
    assert CROWDPOSE.sigmas[12:] == (0.079, 0.079)
    assert AIC.sigmas[0] == pytest.approx(0.01388152) and AIC.sigmas[13] == pytest.approx(0.01236173)
    assert MPII.sigmas[12] == pytest.approx(0.179) and JHMDB.sigmas[1] == pytest.approx(0.107)


@pytest.mark.parametrize("info", list(DATASETS.values()), ids=list(DATASETS))
def test_flip_pairs_swap_left_and_right(info: DatasetInfo):
    idx = info.flip_index
    assert sorted(idx) == list(range(info.num_keypoints))
    assert all(idx[idx[k]] == k for k in range(info.num_keypoints))  # involution
    for k, name in enumerate(info.keypoint_names):
        partner = info.keypoint_names[idx[k]]
        if name.startswith("left_"):
            assert partner == "right_" + name[5:]
        elif name.startswith("right_"):
            assert partner == "left_" + name[6:]
        else:
            assert partner == name
    # the half-body split is a partition and hips/ankles are lower body
    assert sorted(info.upper_body_ids + info.lower_body_ids) == list(range(info.num_keypoints))
    for k in info.lower_body_ids:
        assert not any(s in info.keypoint_names[k] for s in ("shoulder", "wrist", "elbow", "head", "eye"))


def test_coco_skeleton_matches_the_annotation_file():
    if not REAL.is_dir():
        pytest.skip(f"{SHARED_REAL} is missing")
    cat = json.loads((REAL / "coco/test_coco.json").read_text())["categories"][0]
    ours = {frozenset((a + 1, b + 1)) for a, b in COCO.skeleton}
    assert ours == {frozenset(link) for link in cat["skeleton"]}


def _normalise(name: str, info: DatasetInfo) -> str:
    name = name.lower().replace(" ", "_")
    return "top_head" if (info is CROWDPOSE and name == "head") else name  # MMPose's name for it


@pytest.mark.parametrize("rel,info", [
    ("coco/test_coco.json", COCO), ("ochuman/test_ochuman.json", OCHUMAN),
    ("posetrack18/annotations/test_posetrack18_val.json", POSETRACK18), ("jhmdb/test_jhmdb_sub1.json", JHMDB),
    ("aic/test_aic.json", AIC), ("crowdpose/test_crowdpose.json", CROWDPOSE),
])
def test_names_match_the_annotation_files(rel, info):
    if not REAL.is_dir():
        pytest.skip(f"{SHARED_REAL} is missing")
    names = json.loads((REAL / rel).read_text())["categories"][0]["keypoints"]
    assert [_normalise(n, info) for n in names] == list(info.keypoint_names)


def test_infos_are_frozen_and_validated():
    with pytest.raises(dataclasses.FrozenInstanceError):
        COCO.name = "other"  # type: ignore[misc]
    with pytest.raises(ValueError, match="sigmas"):
        dataclasses.replace(COCO, sigmas=COCO.sigmas[:-1])
    with pytest.raises(ValueError, match="out of range"):
        dataclasses.replace(COCO, flip_pairs=((1, 17),))
