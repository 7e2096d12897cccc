"""Calibration data: INT8 calibration sets built from real features, and the per-user neutral face."""
