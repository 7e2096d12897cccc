"""firmware_bridge: the device's framed, versioned serial link to a microcontroller (docs/FIRMWARE.md).

Imports `latentcast` at most; it never imports `renderer` or `edge`: character parameters are read
by field-name strings from the mapping file, so the bridge works with whatever object has them.
"""
