"""Knowledge distillation: one ``Distiller`` (student + frozen teacher + weighted terms + schedule), the
teacher's handling, and the terms of DistilPose (heatmap -> regression), SDPose (self-distillation), Multi-KD and
ViTPose's knowledge tokens (``knowledge_token``)."""

from slimpose.distillation.distiller import Distiller, DistillTerm, StudentOutputs, TeacherOutputs

__all__ = ["Distiller", "DistillTerm", "StudentOutputs", "TeacherOutputs"]
