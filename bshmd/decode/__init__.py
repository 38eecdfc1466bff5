"""Input formats beyond what Pillow opens by itself (camera RAW, HEIC), each in its own module."""
