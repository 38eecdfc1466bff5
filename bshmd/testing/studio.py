"""Photo-like studio-size images for benchmarks: the real test photos scaled up, with sensor grain.

Scaling a small photo up gives smooth, unnaturally compressible pixels; the grain added here
(Gaussian, in luminance and a little in colour, as a camera sensor makes it) puts back the
per-pixel entropy a 24 MP original has, so encoders and decoders see realistic work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

STUDIO_24MP = (6528, 3672)  # width, height of a 24 MP 16:9 frame
STUDIO_61MP = (9504, 6336)


def _cover(image: Any, width: int, height: int, interpolation: int) -> Any:
    import cv2

    src_h, src_w = image.shape[:2]
    scale = max(width / src_w, height / src_h)
    new_w, new_h = max(width, round(src_w * scale)), max(height, round(src_h * scale))
    resized = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
    top, left = (new_h - height) // 2, (new_w - width) // 2
    return resized[top:top + height, left:left + width]


def studio_photo(source: Path, width: int, height: int, *, seed: int = 0, grain: float = 3.0) -> Any:
    """uint8 H×W×3 RGB: ``source`` scaled (bicubic) to cover width×height, plus grain."""
    import cv2
    import numpy as np
    from PIL import Image

    with Image.open(source) as opened:
        small = np.asarray(opened.convert("RGB"))
    image = _cover(small, width, height, cv2.INTER_CUBIC)
    rng = np.random.default_rng(seed)
    # Row by row keeps the float temporaries small at 61 MP.
    out = np.empty_like(image)
    step = 256
    for top in range(0, height, step):
        block = image[top:top + step].astype(np.int16)
        luma = rng.normal(0.0, grain, block.shape[:2]).astype(np.int16)
        chroma = rng.normal(0.0, grain / 3, block.shape).astype(np.int16)
        block += luma[:, :, None]
        block += chroma
        np.clip(block, 0, 255, out=block)
        out[top:top + step] = block
    return out


def studio_matte(matte: Any, width: int, height: int) -> Any:
    """uint8 H×W: a small matte (a uint8 array, or the path of a matte image, e.g. a real
    network's matte of a test photo) scaled to cover width×height as studio_photo does."""
    import cv2
    import numpy as np
    from PIL import Image

    if not isinstance(matte, np.ndarray):
        with Image.open(matte) as opened:
            matte = np.asarray(opened.convert("L"))
    return _cover(matte, width, height, cv2.INTER_LINEAR)


def find_photos(folder: Path) -> list[tuple[Path, Path | None]]:
    """(portrait, its matte or None) for each ``portrait-*.png`` in ``folder``; a matte is
    named after its photo: ``portrait-x.png`` → ``portrait-x.<network>-alpha.png``."""
    found = []
    for photo in sorted(folder.glob("portrait-*.png")):
        if photo.stem.endswith("-alpha"):
            continue
        mattes = sorted(folder.glob(f"{photo.stem}.*-alpha.png"))
        found.append((photo, mattes[0] if mattes else None))
    return found


def photos_folder(repo: Path) -> Path:
    """Where the test photos are: the repository's tests/data/photos, else the shared folder beside it."""
    for candidate in (repo / "tests" / "data" / "photos", repo.parent / "shared" / "testdata"):
        if find_photos(candidate):
            return candidate
    raise FileNotFoundError(f"no portrait-*.png under {repo / 'tests' / 'data' / 'photos'} "
                            f"or {repo.parent / 'shared' / 'testdata'}")


def studio_jpeg(source: Path, width: int, height: int, *, seed: int = 0, quality: int = 92) -> bytes:
    """``studio_photo`` encoded as a JPEG, as a camera would write it."""
    import cv2

    rgb = studio_photo(source, width, height, seed=seed)
    ok, encoded = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("cv2.imencode failed")
    return encoded.tobytes()
