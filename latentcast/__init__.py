"""latentcast: face and hands to animation latents, shared contracts.

This package holds what every side of the system agrees on and nothing heavy: asset
resolution, the user-error convention, landmark features and the wire format. It imports
numpy at most, so the edge device, the renderer host and the workstation can all depend on it.
"""

__version__ = "0.1.0"
