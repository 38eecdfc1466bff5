"""bshmd: a hot-folder daemon that cuts people out of photos with the BSHM matting model."""

__version__ = "0.1.0"
