"""3-D lifting data: Human3.6M (VideoPose3D and MMPose layouts) and MPI-INF-3DHP (P-STMO layout) as
``Sequence3D`` records, read without executing code from the files (``safe_load``)."""

from slimpose.lifting.data.h36m import (H36M_JOINT_NAMES, H36M_JOINTS_LEFT, H36M_JOINTS_RIGHT, H36M_KEPT_JOINTS,
                                        H36M_METADATA, H36M_PARENTS, H36M_TEST_SUBJECTS, H36M_TRAIN_SUBJECTS,
                                        Keypoints2DMetadata, h36m_subjects, load_h36m, load_mmpose_body3d,
                                        load_videopose3d, read_videopose3d_2d, read_videopose3d_3d,
                                        reduce_h36m_joints, remove_joints, write_videopose3d_npz)
from slimpose.lifting.data.mpi_inf_3dhp import load_3dhp_npz
from slimpose.lifting.data.safe_load import RestrictedUnpickler, load_npz, restricted_load, restricted_loads
from slimpose.lifting.data.sequence import Sequence3D

__all__ = [
    "Sequence3D", "load_npz", "restricted_load", "restricted_loads", "RestrictedUnpickler",
    "H36M_JOINT_NAMES", "H36M_JOINTS_LEFT", "H36M_JOINTS_RIGHT", "H36M_KEPT_JOINTS", "H36M_METADATA",
    "H36M_PARENTS", "H36M_TRAIN_SUBJECTS", "H36M_TEST_SUBJECTS", "Keypoints2DMetadata", "h36m_subjects",
    "load_h36m", "load_videopose3d", "load_mmpose_body3d", "read_videopose3d_2d", "read_videopose3d_3d",
    "reduce_h36m_joints", "remove_joints", "write_videopose3d_npz", "load_3dhp_npz",
]
