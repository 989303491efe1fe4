"""Writes the JPEG fixtures of data/decode_test.go and PIL's decoding of each.

    cd data/testdata/jpeg && /usr/bin/python3 gen.py

Each NAME.jpg is a small synthetic image (sharp colour edges, gradients,
noise) in an encoding that Go's image/jpeg encoder cannot write
(progressive, 4:4:4, 4:2:2, CMYK); NAME.png holds what PIL (libjpeg-turbo,
as torchvision uses it) decodes it to, after convert("RGB")."""
import numpy as np
from PIL import Image

rng = np.random.default_rng(3)
h, w = 47, 61
y, x = np.mgrid[0:h, 0:w]
rgb = np.zeros((h, w, 3), np.float64)
rgb[..., 0] = 255 * x / (w - 1)
rgb[..., 1] = 255 * y / (h - 1)
rgb[..., 2] = np.where((x // 8 + y // 8) % 2 == 0, 230, 20)  # chroma edges
rgb[20:30, 10:50] = (250, 10, 10)
rgb += rng.normal(0, 6, rgb.shape)
im = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")
grey = im.convert("L")

cases = {
    "prog420": (im, dict(quality=85, progressive=True, subsampling=2)),
    "prog444": (im, dict(quality=92, progressive=True, subsampling=0)),
    "base444": (im, dict(quality=95, subsampling=0)),
    "base422": (im, dict(quality=80, subsampling=1)),
    "proggrey": (grey, dict(quality=85, progressive=True)),
    "cmyk": (im.convert("CMYK"), dict(quality=90)),
}
for name, (m, opts) in cases.items():
    m.save(name + ".jpg", "JPEG", **opts)
    Image.open(name + ".jpg").convert("RGB").save(name + ".png")
