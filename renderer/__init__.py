"""The renderer host: subscribe to latents, decode, retarget, smooth, animate, forward over VMC.

Pipeline per frame (see docs/RENDERER.md):
``subscriber (latest value) -> decoders (onnxruntime) -> retarget -> idle blend -> smoothing
-> character drawing and/or VMC over OSC``. Depends on the wire format (`latentcast.protocol`) and
the exported bundle (`latentcast.bundle`, `latentcast.inference`), never on training code.
"""
