"""Human3.6M cameras as data, and the camera functions of VideoPose3D.

The functions follow VideoPose3D ``common/quaternion.py`` (``qrot``, ``qinverse``) and
``common/camera.py`` (``world_to_camera``, ``camera_to_world``, ``project_to_2d``,
``project_to_2d_linear``, ``normalize_screen_coordinates``, ``image_coordinates``); the camera tables and
their normalisation on load follow ``common/h36m_dataset.py`` (``Human36mDataset.__init__``). Every
function takes numpy arrays or torch tensors (the same operations, no conversion) and broadcasts.

Conventions (VideoPose3D):

* a quaternion is ``(w, x, y, z)``; a camera's ``orientation`` rotates camera coordinates into world
  coordinates and its ``translation`` is the camera centre in world coordinates, so
  ``world_to_camera(X, R, t) = qrot(qinverse(R), X - t)`` and ``camera_to_world(X, R, t) = qrot(R, X) + t``;
* the official tables give translations in millimetres; VideoPose3D divides them by 1000 on load, and
  :class:`Camera` holds metres;
* ``project_to_2d`` takes the 9-vector ``[fx, fy, cx, cy, k1, k2, k3, p1, p2]`` of **normalised**
  intrinsics (``f / w * 2`` and ``normalize_screen_coordinates(c, w, h)``) and returns normalised screen
  coordinates; ``Camera.project(..., pixels=True)`` maps them back to pixels.

What ships and what a user supplies: the camera ids, their image sizes and camera 0's intrinsics (rounded
as ``shared/reference`` gives them) are below; the full-precision intrinsics of all four cameras and the
per-subject extrinsics are **not** shipped. Supply them with :func:`load_h36m_cameras` (a JSON file holding
VideoPose3D's two tables, ``intrinsic`` and ``extrinsic``) or :func:`h36m_cameras` (the same tables as
Python objects). See ``docs/datasets.md`` (Human3.6M and MPI-INF-3DHP).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

import numpy as np

from slimpose.utils.io import SlimposeInputError, load_json

__all__ = [
    "Camera", "H36M_CAMERA_IDS", "H36M_CAMERA_INDEX", "H36M_IMAGE_SIZES", "H36M_REFERENCE_INTRINSICS",
    "H36M_SUBJECTS", "qrot", "qinverse", "world_to_camera", "camera_to_world", "project_to_2d",
    "project_to_2d_linear", "normalize_screen_coordinates", "image_coordinates",
    "unnormalize_screen_coordinates", "h36m_cameras", "load_h36m_cameras",
]

#: The four Human3.6M cameras in VideoPose3D's order (``h36m_cameras_intrinsic_params``); a 2-D file's
#: list of per-camera arrays follows this order (``prepare_data_2d_h36m_generic.py``'s camera map).
H36M_CAMERA_IDS: tuple[str, ...] = ("54138969", "55011271", "58860488", "60457274")
H36M_CAMERA_INDEX: dict[str, int] = {cam: i for i, cam in enumerate(H36M_CAMERA_IDS)}
#: ``(res_w, res_h)`` of each camera (VideoPose3D ``res_w`` / ``res_h``; MMPose ``preprocess_h36m.py``).
H36M_IMAGE_SIZES: dict[str, tuple[int, int]] = {
    "54138969": (1000, 1002), "55011271": (1000, 1000), "58860488": (1000, 1000), "60457274": (1000, 1002),
}
#: Subjects with motion capture (S2-S4 have detections only and no extrinsics).
H36M_SUBJECTS: tuple[str, ...] = ("S1", "S5", "S6", "S7", "S8", "S9", "S11")
#: The intrinsics the reference states, in pixels: camera 0 only, **rounded** to the digits given there
#: (VideoPose3D's table has float32 precision). Enough for checks and examples, not for reproducing
#: published numbers: load the full tables with :func:`load_h36m_cameras`.
H36M_REFERENCE_INTRINSICS: dict[str, dict[str, tuple[float, ...]]] = {
    "54138969": {
        "focal_length": (1145.05, 1143.78),
        "center": (512.54, 515.45),
        "radial_distortion": (-0.2071, 0.2478, -0.0031),
        "tangential_distortion": (-0.00098, -0.00142),
    },
}


# ---------------------------------------------------------------------------------------------------
# array helpers (numpy or torch)

def _is_torch(x: Any) -> bool:
    return hasattr(x, "new_tensor")


def _arr(x: Any) -> Any:
    return x if _is_torch(x) else np.asarray(x, dtype=np.result_type(np.asarray(x).dtype, np.float32))


def _const(like: Any, values: Sequence[float]) -> Any:
    return like.new_tensor(values) if _is_torch(like) else np.asarray(values, dtype=like.dtype)


def _cross(a: Any, b: Any) -> Any:
    """Cross product over the last axis, broadcasting (numpy and torch alike)."""
    i, j = [1, 2, 0], [2, 0, 1]
    return a[..., i] * b[..., j] - a[..., j] * b[..., i]


def _match(x: Any, other: Any) -> Any:
    """``other`` as the same kind of array as ``x``, in its dtype (and device, for torch)."""
    if _is_torch(x):
        return other.to(x) if _is_torch(other) else x.new_tensor(np.asarray(other))
    return np.asarray(other, dtype=x.dtype)


# ---------------------------------------------------------------------------------------------------
# quaternions and frames

def qinverse(q: Any) -> Any:
    """Inverse of a unit quaternion ``(w, x, y, z)``: its conjugate (VideoPose3D ``qinverse``)."""
    q = _arr(q)
    return q * _const(q, [1.0, -1.0, -1.0, -1.0])


def qrot(q: Any, v: Any) -> Any:
    """Rotate vectors ``v (..., 3)`` by unit quaternions ``q (..., 4)`` (VideoPose3D ``qrot``):
    ``v + 2 (w (u x v) + u x (u x v))`` with ``u = q[1:]``; ``q`` broadcasts against ``v``."""
    v = _arr(v)
    q = _match(v, q)
    if q.shape[-1] != 4 or v.shape[-1] != 3:
        raise ValueError(f"qrot: expected q (..., 4) and v (..., 3), got {tuple(q.shape)} and {tuple(v.shape)}")
    u = q[..., 1:]
    uv = _cross(u, v)
    uuv = _cross(u, uv)
    return v + 2 * (q[..., :1] * uv + uuv)


def world_to_camera(X: Any, R: Any, t: Any) -> Any:
    """World -> camera coordinates, ``qrot(qinverse(R), X - t)`` (VideoPose3D ``world_to_camera``).
    ``R``: orientation quaternion ``(w, x, y, z)``; ``t``: camera centre in world units (metres)."""
    X = _arr(X)
    return qrot(qinverse(_match(X, R)), X - _match(X, t))


def camera_to_world(X: Any, R: Any, t: Any) -> Any:
    """Camera -> world coordinates, ``qrot(R, X) + t`` (VideoPose3D ``camera_to_world``)."""
    X = _arr(X)
    return qrot(_match(X, R), X) + _match(X, t)


# ---------------------------------------------------------------------------------------------------
# projection

def _split_intrinsics(X: Any, camera_params: Any) -> Any:
    p = _match(X, camera_params)
    if p.shape[-1] != 9:
        raise ValueError(f"camera_params must end in the 9 values [fx, fy, cx, cy, k1, k2, k3, p1, p2], "
                         f"got shape {tuple(p.shape)}")
    # VideoPose3D unsqueezes (N, 9) parameters at dim 1 until they broadcast against X (N, *, 3).
    while p.ndim < X.ndim:
        p = p[:, None] if p.ndim >= 2 else p[None]
    return p


def project_to_2d(X: Any, camera_params: Any) -> Any:
    """Camera-frame points ``X (..., 3)`` -> 2-D with Human3.6M's distortion model (VideoPose3D
    ``project_to_2d``): ``XX = clamp(X_xy / X_z, -1, 1)``, ``r2 = |XX|^2``,
    ``radial = 1 + k1 r2 + k2 r2^2 + k3 r2^3``, ``tan = p1 x + p2 y``, ``XXX = XX (radial + tan) + p r2``,
    result ``f XXX + c``. ``camera_params``: ``(..., 9)`` (``(N, 9)`` for ``X (N, *, 3)``, or ``(9,)``).
    With :attr:`Camera.intrinsic` the result is in normalised screen coordinates."""
    X = _arr(X)
    p = _split_intrinsics(X, camera_params)
    f, c, k, tp = p[..., 0:2], p[..., 2:4], p[..., 4:7], p[..., 7:9]
    XX = (X[..., :2] / X[..., 2:3]).clip(-1, 1)
    r2 = (XX ** 2).sum(-1, keepdims=True) if not _is_torch(XX) else (XX ** 2).sum(-1, keepdim=True)
    radial = 1 + k[..., 0:1] * r2 + k[..., 1:2] * r2 ** 2 + k[..., 2:3] * r2 ** 3
    tan = tp[..., 0:1] * XX[..., 0:1] + tp[..., 1:2] * XX[..., 1:2]
    XXX = XX * (radial + tan) + tp * r2
    return f * XXX + c


def project_to_2d_linear(X: Any, camera_params: Any) -> Any:
    """Pinhole projection with focal length and centre only (VideoPose3D ``project_to_2d_linear``):
    ``f clamp(X_xy / X_z, -1, 1) + c`` (the official clamp is kept)."""
    X = _arr(X)
    p = _split_intrinsics(X, camera_params)
    return p[..., 0:2] * (X[..., :2] / X[..., 2:3]).clip(-1, 1) + p[..., 2:4]


def normalize_screen_coordinates(X: Any, w: float, h: float) -> Any:
    """Pixels -> ``X / w * 2 - [1, h / w]`` (VideoPose3D ``normalize_screen_coordinates``): ``[0, w]`` maps
    to ``[-1, 1]``, both axes divided by the width (aspect kept)."""
    X = _arr(X)
    if X.shape[-1] != 2:
        raise ValueError(f"normalize_screen_coordinates: expected (..., 2), got {tuple(X.shape)}")
    return X / w * 2 - _const(X, [1.0, h / w])


def image_coordinates(X: Any, w: float, h: float) -> Any:
    """Normalised screen coordinates -> pixels, ``(X + [1, h / w]) * w / 2`` (VideoPose3D
    ``image_coordinates``, the inverse of :func:`normalize_screen_coordinates`)."""
    X = _arr(X)
    if X.shape[-1] != 2:
        raise ValueError(f"image_coordinates: expected (..., 2), got {tuple(X.shape)}")
    return (X + _const(X, [1.0, h / w])) * w / 2


unnormalize_screen_coordinates = image_coordinates


# ---------------------------------------------------------------------------------------------------
# cameras

@dataclass(frozen=True)
class Camera:
    """One calibrated camera (the fields of VideoPose3D's camera dicts, in pixels and metres).

    ``orientation`` (quaternion ``(w, x, y, z)``, camera -> world) and ``translation`` (camera centre in
    world coordinates, **metres**) are ``None`` for a camera without extrinsics (S2-S4)."""

    id: str
    image_size: tuple[int, int]                         # (res_w, res_h)
    focal_length: tuple[float, float]                   # pixels
    center: tuple[float, float]                         # pixels
    radial_distortion: tuple[float, float, float] = (0.0, 0.0, 0.0)
    tangential_distortion: tuple[float, float] = (0.0, 0.0)
    orientation: tuple[float, float, float, float] | None = None
    translation: tuple[float, float, float] | None = None

    @property
    def has_extrinsics(self) -> bool:
        return self.orientation is not None and self.translation is not None

    @property
    def intrinsic(self) -> np.ndarray:
        """``[fx, fy, cx, cy, k1, k2, k3, p1, p2]`` normalised as VideoPose3D does on load (``f / w * 2``,
        ``normalize_screen_coordinates(c, w, h)``), float32: the ``camera_params`` of :func:`project_to_2d`."""
        w, h = self.image_size
        f = np.asarray(self.focal_length, np.float32) / w * 2
        c = normalize_screen_coordinates(np.asarray(self.center, np.float32), w, h)
        return np.concatenate([f, c, np.asarray(self.radial_distortion, np.float32),
                               np.asarray(self.tangential_distortion, np.float32)]).astype(np.float32)

    def _extrinsics(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        if not self.has_extrinsics:
            raise ValueError(f"camera {self.id} has no extrinsics (orientation / translation)")
        return self.orientation, self.translation  # type: ignore[return-value]

    def world_to_camera(self, X: Any) -> Any:
        """World points (metres) -> this camera's frame."""
        R, t = self._extrinsics()
        return world_to_camera(X, R, t)

    def camera_to_world(self, X: Any) -> Any:
        """This camera's frame -> world points (metres)."""
        R, t = self._extrinsics()
        return camera_to_world(X, R, t)

    def project(self, X: Any, distort: bool = True, pixels: bool = False) -> Any:
        """Camera-frame points -> 2-D (normalised screen coordinates, or pixels with ``pixels=True``),
        with the distortion model (``distort=True``) or the linear one."""
        fn = project_to_2d if distort else project_to_2d_linear
        out = fn(X, self.intrinsic)
        return image_coordinates(out, *self.image_size) if pixels else out

    def with_extrinsics(self, orientation: Sequence[float], translation_m: Sequence[float]) -> "Camera":
        """A copy with extrinsics (translation in metres)."""
        return replace(self, orientation=_floats(orientation, 4, "orientation"),
                       translation=_floats(translation_m, 3, "translation"))


def _floats(values: Any, n: int, what: str) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be {n} numbers, got {values!r}") from None
    if len(out) != n or not all(np.isfinite(out)):
        raise ValueError(f"{what} must be {n} finite numbers, got {values!r}")
    return out


def h36m_cameras(intrinsic_params: Sequence[Mapping[str, Any]],
                 extrinsic_params: Mapping[str, Sequence[Mapping[str, Any]]],
                 source: str = "camera tables") -> dict[str, list[Camera]]:
    """``subject -> [Camera] * 4`` from VideoPose3D's two tables (``h36m_cameras_intrinsic_params``: 4
    dicts with ``id``, ``center``, ``focal_length``, ``radial_distortion``, ``tangential_distortion``,
    ``res_w``, ``res_h``; ``h36m_cameras_extrinsic_params``: ``subject -> 4 dicts`` with ``orientation``
    ``(w, x, y, z)`` and ``translation`` in **millimetres**, or ``{}`` for none). As
    ``Human36mDataset.__init__``: camera i of every subject takes intrinsics i; translation / 1000."""
    try:
        intrinsics = []
        for i, p in enumerate(intrinsic_params):
            where = f"intrinsic[{i}]"
            missing = [k for k in ("id", "center", "focal_length", "res_w", "res_h") if k not in p]
            if missing:
                raise SlimposeInputError(f"{source}: {where} lacks {missing}")
            intrinsics.append(Camera(
                id=str(p["id"]), image_size=(int(p["res_w"]), int(p["res_h"])),
                focal_length=_floats(p["focal_length"], 2, f"{where}.focal_length"),
                center=_floats(p["center"], 2, f"{where}.center"),
                radial_distortion=_floats(p.get("radial_distortion", (0, 0, 0)), 3, f"{where}.radial_distortion"),
                tangential_distortion=_floats(p.get("tangential_distortion", (0, 0)), 2,
                                              f"{where}.tangential_distortion")))
        out: dict[str, list[Camera]] = {}
        for subject, cams in extrinsic_params.items():
            if len(cams) != len(intrinsics):
                raise SlimposeInputError(f"{source}: extrinsic[{subject!r}] has {len(cams)} cameras, "
                                         f"the intrinsic table {len(intrinsics)}")
            row = []
            for i, (cam, e) in enumerate(zip(intrinsics, cams)):
                if not e:
                    row.append(cam)
                    continue
                if "orientation" not in e or "translation" not in e:
                    raise SlimposeInputError(f"{source}: extrinsic[{subject!r}][{i}] needs 'orientation' and "
                                             "'translation' (or is {} for none)")
                t_mm = _floats(e["translation"], 3, f"extrinsic[{subject!r}][{i}].translation")
                row.append(cam.with_extrinsics(e["orientation"], [v / 1000.0 for v in t_mm]))
            out[str(subject)] = row
    except (ValueError, TypeError, AttributeError) as e:
        if isinstance(e, SlimposeInputError):
            raise
        raise SlimposeInputError(f"{source}: malformed camera table ({e})") from None
    return out


def load_h36m_cameras(path: str | os.PathLike) -> dict[str, list[Camera]]:
    """Load ``subject -> [Camera] * 4`` from a JSON file ``{"intrinsic": [...], "extrinsic": {...}}``
    holding VideoPose3D's ``h36m_cameras_intrinsic_params`` and ``h36m_cameras_extrinsic_params`` as they
    are (translations in mm); see :func:`h36m_cameras`."""
    data = load_json(path, "Human3.6M camera file")
    if not isinstance(data, dict) or "intrinsic" not in data or "extrinsic" not in data:
        raise SlimposeInputError(f"{path}: a Human3.6M camera file is a JSON object with keys 'intrinsic' "
                                 "(list of 4 camera dicts) and 'extrinsic' (subject -> list of 4 dicts)")
    if not isinstance(data["intrinsic"], list) or not isinstance(data["extrinsic"], dict):
        raise SlimposeInputError(f"{path}: 'intrinsic' must be a list and 'extrinsic' an object")
    return h36m_cameras(data["intrinsic"], data["extrinsic"], source=str(path))
