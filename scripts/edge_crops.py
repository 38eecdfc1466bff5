"""Make the README's before/after pair of a soft edge: docs/edges-none.png, docs/edges-decontaminate.png.

    .venv/bin/python scripts/edge_crops.py [--photo PNG] [--matte PNG] [--crop X0,Y0,X1,Y1] [--out docs]

A real photo and a real matte of it (default: the test portrait, tests/data/photos/portrait-hopper.png,
and MediaPipe selfie segmentation's matte of it; see tests/data/LICENSES.md), composited on white
by render_outputs with ``outputs.edges: none`` (the photo's colour at the edge) and
``decontaminate``; the same crop of each, enlarged 3× without smoothing so single pixels show.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PHOTOS = REPO / "tests" / "data" / "photos"
CROP = "110,140,230,300"  # x0,y0,x1,y1 in the 512×600 portrait: grey hair against the flag's blue, ear
ENLARGE = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photo", type=Path, default=PHOTOS / "portrait-hopper.png")
    parser.add_argument("--matte", type=Path, default=PHOTOS / "portrait-hopper.selfie-alpha.png",
                        help="the matte of --photo, 8-bit grey at the photo's size")
    parser.add_argument("--crop", default=CROP, help="x0,y0,x1,y1 in the photo (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=REPO / "docs")
    args = parser.parse_args()

    import numpy as np
    from PIL import Image

    from bshmd.config import OutputsConfig
    from bshmd.decode.image import decode_image
    from bshmd.outputs.render import render_outputs

    crop_box = tuple(int(v) for v in args.crop.split(","))
    rgb = decode_image(args.photo, max_pixels=10**8, max_file_bytes=10**9)
    with Image.open(args.matte) as image:
        alpha = np.asarray(image.convert("L"), dtype=np.uint8)
    args.out.mkdir(parents=True, exist_ok=True)
    for edges in ("none", "decontaminate"):
        outputs = OutputsConfig(formats=("composite",), composite_format="png", background="#ffffff", edges=edges)
        with Image.open(io.BytesIO(render_outputs(rgb, alpha, outputs)["composite"])) as composite:
            crop = composite.crop(crop_box)
            crop = crop.resize((crop.width * ENLARGE, crop.height * ENLARGE), Image.Resampling.NEAREST)
        target = args.out / f"edges-{edges}.png"
        crop.save(target, optimize=True)
        print(f"{target}  {crop.width}x{crop.height}")


if __name__ == "__main__":
    main()
