"""The device side: camera -> MediaPipe landmarks -> features -> encoders -> One Euro -> ZeroMQ.

Never imports torch: this runs on a Jetson with onnxruntime/TensorRT only.
"""
