"""3-D lifting: video 2-D keypoints -> 3-D poses (MixSTE, HoT, KTPFormer), their data and metrics."""
