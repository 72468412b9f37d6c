"""Knowledge distillation: DistilPose heatmap-to-regression (``distilpose``) and SDPose self-distillation."""
