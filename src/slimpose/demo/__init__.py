"""The built-in demo (``slimpose demo``): synthetic people -> heatmap teacher -> regression students ->
COCO AP, benchmark and a report. ``run`` holds the run logic, ``report`` the report text."""

from slimpose.demo.report import MODEL_KEYS, render_report, verdict
from slimpose.demo.run import DemoSizes, demo_sizes, prepare_data, run_demo

__all__ = ["DemoSizes", "demo_sizes", "prepare_data", "run_demo", "MODEL_KEYS", "render_report", "verdict"]
