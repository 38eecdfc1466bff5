"""Make the README's before/after pair of a soft edge: docs/edges-none.png, docs/edges-decontaminate.png.

    .venv/bin/python scripts/edge_crops.py [--testdata DIR] [--out docs]

The real studio photo and its real BSHM matte, composited on white by render_outputs with
``outputs.edges: none`` (the photo's colour at the edge) and ``decontaminate``; the same crop
of each (the dancer's hair and shoulder), enlarged 3× without smoothing so single pixels show.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CROP = (400, 100, 560, 220)  # x0, y0, x1, y1 in the 948×533 photo: hair, face, white top
ENLARGE = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--testdata", type=Path, default=REPO.parent / "shared" / "testdata")
    parser.add_argument("--out", type=Path, default=REPO / "docs")
    args = parser.parse_args()

    import numpy as np
    from PIL import Image

    from bshmd.config import OutputsConfig
    from bshmd.pipeline.decode import decode_image
    from bshmd.pipeline.outputs import render_outputs

    rgb = decode_image(args.testdata / "portrait-studio.png", max_pixels=10**8, max_file_bytes=10**9)
    with Image.open(args.testdata / "portrait-studio.bshm-alpha.png") as image:
        alpha = np.asarray(image.convert("L"), dtype=np.uint8)
    args.out.mkdir(parents=True, exist_ok=True)
    for edges in ("none", "decontaminate"):
        outputs = OutputsConfig(formats=("composite",), composite_format="png", background="#ffffff", edges=edges)
        with Image.open(io.BytesIO(render_outputs(rgb, alpha, outputs)["composite"])) as composite:
            crop = composite.crop(CROP)
            crop = crop.resize((crop.width * ENLARGE, crop.height * ENLARGE), Image.Resampling.NEAREST)
        target = args.out / f"edges-{edges}.png"
        crop.save(target, optimize=True)
        print(f"{target}  {crop.width}x{crop.height}")


if __name__ == "__main__":
    main()
