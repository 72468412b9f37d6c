"""TopDownDataset on the real samples: output contract, exact keypoint round trips, warp sanity,
outside-crop weights, normalisation and (seed, epoch, index) reproducibility."""


import cv2
import numpy as np
import pytest
import torch

from slimpose.data.coco import load_coco_instances
from slimpose.data.dataset import IMAGENET_MEAN, IMAGENET_STD, TopDownDataset, read_image
from slimpose.data.instances import PoseInstance
from slimpose.data.metainfo import COCO, JHMDB, MPII, POSETRACK18
from slimpose.data.mpii import load_mpii_instances
from slimpose.data.transforms import (AugmentConfig, compose_affine, crop_to_image, get_warp_matrix,
                                      hflip_matrix)
from _shared import SHARED_REAL

try:
    from slimpose.codecs.msra_heatmap import MSRAHeatmap
except ImportError:  # stand-in while the codec is not there
    class MSRAHeatmap:  # type: ignore[no-redef]
        def __init__(self, input_size=(192, 256), heatmap_size=(48, 64), sigma=2.0):
            self.stride = np.array(input_size, np.float32) / np.array(heatmap_size, np.float32)
            self.heatmap_size, self.sigma = heatmap_size, sigma

        def encode(self, keypoints, weights):
            mu = keypoints / self.stride
            xs, ys = np.arange(self.heatmap_size[0]), np.arange(self.heatmap_size[1])
            dx2 = (xs[None, None] - mu[:, 0, None, None]) ** 2
            dy2 = (ys[None, :, None] - mu[:, 1, None, None]) ** 2
            g = np.exp(-(dx2 + dy2) / (2 * self.sigma ** 2))
            return {"target": (g * (weights[:, None, None] > 0)).astype(np.float32),
                    "target_weight": weights.astype(np.float32)}

REAL = SHARED_REAL
needs_real = pytest.mark.skipif(not REAL.is_dir(), reason=f"{SHARED_REAL} is missing")
torch.set_num_threads(1)
NO_JITTER = AugmentConfig(color_jitter=False, half_body_prob=0.0, rotation_prob=1.0, flip_prob=0.5)


def _real_sets():
    return [
        (load_coco_instances(REAL / "coco/test_coco.json", info=COCO)[:4], COCO),
        (load_mpii_instances(REAL / "mpii/test_mpii.json")[:2], MPII),
        (load_coco_instances(REAL / "posetrack18/annotations/test_posetrack18_val.json",
                             info=POSETRACK18)[:2], POSETRACK18),
        (load_coco_instances(REAL / "jhmdb/test_jhmdb_sub1.json", info=JHMDB)[:2], JHMDB),
    ]


def _bilinear(image: np.ndarray, x: float, y: float) -> np.ndarray:
    x0, y0 = int(np.floor(x)), int(np.floor(y))
    ax, ay = x - x0, y - y0
    patch = image[y0:y0 + 2, x0:x0 + 2].astype(np.float64)
    return (patch[0, 0] * (1 - ax) * (1 - ay) + patch[0, 1] * ax * (1 - ay)
            + patch[1, 0] * (1 - ax) * ay + patch[1, 1] * ax * ay)


def _denormalise(chw: torch.Tensor) -> np.ndarray:
    rgb = chw.numpy().transpose(1, 2, 0) * np.array(IMAGENET_STD) + np.array(IMAGENET_MEAN)
    return rgb[..., ::-1] * 255.0  # back to BGR 0..255


@needs_real
@pytest.mark.parametrize("udp", [False, True], ids=["standard", "udp"])
@pytest.mark.parametrize("train", [False, True], ids=["val", "train"])
def test_round_trip_and_pixels_on_real_images(udp, train):
    codec = MSRAHeatmap(input_size=(192, 256), heatmap_size=(48, 64), sigma=2.0)
    checked, flipped_seen, diffs = 0, 0, []
    for instances, info in _real_sets():
        ds = TopDownDataset(instances, info, codec, input_size=(192, 256), train=train, udp=udp,
                            aug=NO_JITTER, seed=3)
        for i, inst in enumerate(instances):
            s = ds[i]
            k = info.num_keypoints
            assert s["image"].shape == (3, 256, 192) and s["image"].dtype == torch.float32
            assert s["target"].shape == (k, 64, 48) and s["target_weight"].shape == (k,)
            assert s["keypoints"].shape == (k, 2) and s["visible"].shape == (k,) and s["index"] == i
            assert s["image_id"] == inst.image_id and (s["rotation"] != 0.0) == train
            image = read_image(inst.image_path)
            width = image.shape[1]
            back = crop_to_image(s["keypoints"].numpy(), s["center"].numpy(), s["scale"].numpy(), (192, 256),
                                 rotation=s["rotation"], udp=udp).astype(np.float64)
            vis = s["visible"].numpy()
            if s["flipped"]:
                flipped_seen += 1
                back[:, 0] = width - 1 - back[:, 0]
                back = back[list(info.flip_index)]
                vis = vis[list(info.flip_index)]
            lab = inst.visible > 0
            assert lab.any()
            # keypoints kept in the crop come back to the image within 1e-3 px
            keep = vis > 0
            assert keep.sum() >= 1 and not (keep & ~lab).any()
            np.testing.assert_allclose(back[keep], inst.keypoints[keep], atol=1e-3)
            assert not ((s["target_weight"] > 0) & (s["visible"] == 0)).any()
            # the crop pixel at a kept keypoint is the image pixel at the corresponding place
            m = get_warp_matrix(s["center"].numpy().astype(np.float64), s["scale"].numpy().astype(np.float64),
                                s["rotation"], (192, 256), udp=udp, inv=True)
            if s["flipped"]:
                m = compose_affine(hflip_matrix(width), m)
            crop = _denormalise(s["image"])
            for px, py in np.round(s["keypoints"].numpy()[s["visible"].numpy() > 0]).astype(int):
                if not (0 <= px < 192 and 0 <= py < 256):
                    continue
                sx, sy = m[:, :2] @ [px, py] + m[:, 2]
                if 0 <= sx < width - 1 and 0 <= sy < image.shape[0] - 1:
                    diffs.append(np.abs(crop[py, px] - _bilinear(image, sx, sy)).max())
                    checked += 1
    assert checked > 60
    diffs = np.array(diffs)
    # uint8 rounding only (a 3 degree rotation error gives a median of ~10 grey levels here)
    assert np.median(diffs) <= 0.6 and diffs.max() <= 1.5, (np.median(diffs), diffs.max())
    if train:
        assert flipped_seen > 0


@needs_real
def test_outside_keypoints_get_zero_weight_and_batches_collate():
    inst = load_coco_instances(REAL / "coco/test_coco.json", info=COCO)[0]
    kpts, vis = inst.keypoints.copy(), np.full(17, 2.0, np.float32)
    kpts[3] = inst.bbox[:2] + inst.bbox[2:] * 3.0  # far outside the padded box
    kpts[4] = inst.bbox[:2] + inst.bbox[2:] * 0.5  # box centre
    far = PoseInstance(inst.image_path, inst.image_id, inst.bbox, kpts, vis, ann_id=inst.ann_id)
    det = PoseInstance(inst.image_path, inst.image_id, inst.bbox, np.zeros((17, 2)), np.zeros(17),
                       bbox_score=0.7)
    ds = TopDownDataset([far, det], COCO, MSRAHeatmap(), input_size=(192, 256))
    s = ds[0]
    assert s["visible"][3] == 0 and s["target_weight"][3] == 0 and s["target"][3].abs().sum() == 0
    assert s["visible"][4] == 2 and s["target_weight"][4] == 1
    np.testing.assert_allclose(s["keypoints"][4].numpy(), [96, 128], atol=1e-3)  # box centre -> crop centre
    assert ds[1]["target_weight"].sum() == 0 and ds[1]["bbox_score"] == pytest.approx(0.7)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2)))
    assert batch["image"].shape == (2, 3, 256, 192) and batch["target"].shape == (2, 17, 64, 48)
    assert batch["index"].tolist() == [0, 1] and batch["center"].shape == (2, 2)


def test_normalisation_is_rgb_imagenet(tmp_path):
    img = np.zeros((100, 80, 3), np.uint8)
    img[:] = (10, 128, 250)  # BGR
    cv2.imwrite(str(tmp_path / "flat.png"), img)
    inst = PoseInstance(str(tmp_path / "flat.png"), 1, [20, 20, 40, 60], np.full((17, 2), 40.0),
                        np.full(17, 2.0))
    s = TopDownDataset([inst], COCO, MSRAHeatmap())[0]
    centre = s["image"][:, 128, 96].numpy()
    expected = (np.array([250, 128, 10]) / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(centre, expected, atol=1e-5)


@needs_real
def test_same_seed_epoch_index_gives_the_same_sample_in_any_worker():
    instances = load_coco_instances(REAL / "coco/test_coco.json", info=COCO)[:4]
    make = lambda seed: TopDownDataset(instances, COCO, MSRAHeatmap(), train=True, seed=seed)  # noqa: E731
    a, b = make(7), make(7)
    a.set_epoch(2)
    b.set_epoch(2)
    s1, s2 = a[1], b[1]
    for key in ("image", "target", "keypoints", "center", "scale"):
        assert torch.equal(s1[key], s2[key]), key
    assert s1["rotation"] == s2["rotation"]
    b.set_epoch(3)
    assert not torch.equal(b[1]["image"], s1["image"])
    assert not torch.equal(make(8)[1]["image"], make(7)[1]["image"])
    assert torch.equal(TopDownDataset(instances, COCO, MSRAHeatmap(), train=True)[0]["image"],
                       make(0)[0]["image"])  # seed None -> 0
    loader = torch.utils.data.DataLoader(a, batch_size=1, num_workers=2, shuffle=False)
    for i, batch in enumerate(loader):
        direct = a[i]
        assert torch.equal(batch["image"][0], direct["image"])
        assert torch.equal(batch["target"][0], direct["target"])
