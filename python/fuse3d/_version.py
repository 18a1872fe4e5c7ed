"""The version of the fuse3d wheel; scripts/wheel.py checks it equals `fuse3d --version`."""
__version__ = "0.1.0"
