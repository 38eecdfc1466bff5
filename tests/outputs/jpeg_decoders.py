"""One JPEG decoded by the decoders a marketplace or a browser may use: Pillow, OpenCV, djpeg."""

from __future__ import annotations

import io
import shutil
import subprocess
from typing import Any

import pytest

# libjpeg's three inverse transforms: the default integer one (Pillow, OpenCV, browsers), the
# float one, and the fast one some viewers pick for speed.
DJPEG_METHODS = ("int", "float", "fast")


def need_djpeg() -> None:
    if shutil.which("djpeg") is None:
        pytest.skip("djpeg is missing: scripts/setup --dev installs libjpeg-turbo-progs")


def pillow(blob: bytes) -> Any:
    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(blob)) as image:
        return np.asarray(image.convert("RGB"))


def opencv(blob: bytes) -> Any:
    import cv2
    import numpy as np

    return cv2.cvtColor(cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def djpeg(blob: bytes, method: str = "int") -> Any:
    need_djpeg()
    ppm = subprocess.run(["djpeg", "-dct", method, "-pnm"], input=blob, capture_output=True, check=True).stdout
    return pillow_ppm(ppm)


def pillow_ppm(ppm: bytes) -> Any:
    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(ppm)) as image:
        return np.asarray(image)


def decoded_by_all(blob: bytes) -> dict[str, Any]:
    """decoder name → RGB array (H×W×3 uint8)."""
    found = {"pillow": pillow(blob), "opencv": opencv(blob)}
    for method in DJPEG_METHODS:
        found[f"djpeg -dct {method}"] = djpeg(blob, method)
    return found
