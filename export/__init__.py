"""Workstation side of deployment: PyTorch AAE -> ONNX -> INT8 QDQ -> TensorRT engines -> a versioned bundle."""
