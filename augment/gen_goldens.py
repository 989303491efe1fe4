#!/usr/bin/python3
"""Golden outputs of torchvision's tensor transforms for the Go augment package.

usage: /usr/bin/python3 augment/gen_goldens.py [--out augment/testdata/goldens.json]

Needs torch 1.13 + torchvision 0.14 (Debian python3-torch / python3-torchvision).
Makes small deterministic synthetic images (gradients + noise + a flat gray patch
so that every HSV branch is hit), applies each torchvision.transforms.functional
op with FIXED parameters on float32 CHW tensors in [0,1], and the whole SimCLR
composition with fixed parameters, and writes inputs, parameters and outputs.
Resizing uses antialias=True (what torchvision does for PIL images, the usual
SimCLR input, and the tensor default from torchvision 0.17 on)."""
import argparse
import json
import os

import numpy as np
import torch
import torchvision
import torchvision.transforms.functional as F
from torchvision.transforms import InterpolationMode

ap = argparse.ArgumentParser()
ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "testdata", "goldens.json"))
args = ap.parse_args()

torch.set_num_threads(1)
rng = np.random.default_rng(20240601)


def synth(w, h):
    """Colour gradients + smooth waves + noise, clipped to [0,1], with a flat gray patch
    and a few saturated/extreme pixels. Rounded to 6 decimals so that the JSON holds the
    exact input."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = x / (w - 1)
    g = y / (h - 1)
    b = 0.5 + 0.4 * np.sin(x / 3.0) * np.cos(y / 4.0)
    img = np.stack([r, g, b]) + rng.normal(0, 0.08, (3, h, w))
    img = np.clip(img, 0, 1)
    img[:, 2:6, 2:7] = 0.4  # flat gray: maxc == minc branch of _rgb2hsv
    img[:, 0, 0] = (1, 0, 0)
    img[:, 0, 1] = (0, 1, 0)
    img[:, 0, 2] = (0, 0, 1)
    img[:, 1, 0] = (1, 1, 1)
    img[:, 1, 1] = (0, 0, 0)
    return np.round(img, 6).astype(np.float32)


images = {"a": synth(37, 29), "b": synth(64, 48)}
tensors = {k: torch.from_numpy(v) for k, v in images.items()}


def flat(t):
    return [round(float(v), 6) for v in t.detach().reshape(-1).tolist()]


cases = []


def add(op, image, params, out):
    out = out.contiguous()
    assert out.dim() == 3 and out.shape[0] == 3, out.shape
    cases.append(dict(op=op, image=image, params=params, out_w=int(out.shape[2]), out_h=int(out.shape[1]), out=flat(out)))


BIL = InterpolationMode.BILINEAR

# resized_crop: downsampling, upsampling, identity, strongly anisotropic
for image, (top, left, h, w, size) in [("b", (3, 5, 40, 52, 16)), ("b", (0, 0, 48, 64, 24)), ("a", (4, 6, 9, 7, 24)),
                                       ("a", (0, 0, 29, 37, 32)), ("a", (2, 3, 20, 20, 20)), ("b", (10, 1, 11, 60, 19))]:
    out = F.resized_crop(tensors[image], top, left, h, w, [size, size], BIL, antialias=True)
    add("resized_crop", image, dict(top=top, left=left, h=h, w=w, size=size), out)

add("hflip", "a", {}, F.hflip(tensors["a"]))
for f in (0.3, 1.6):
    add("brightness", "a", dict(factor=f), F.adjust_brightness(tensors["a"], f))
for f in (0.4, 1.7):
    add("contrast", "a", dict(factor=f), F.adjust_contrast(tensors["a"], f))
for f in (0.2, 1.8):
    add("saturation", "a", dict(factor=f), F.adjust_saturation(tensors["a"], f))
for f in (-0.2, 0.1, 0.45, -0.5):
    add("hue", "a", dict(factor=f), F.adjust_hue(tensors["a"], f))
add("grayscale", "a", {}, F.rgb_to_grayscale(tensors["a"], num_output_channels=3))
for image, k, s in [("a", 3, 0.5), ("a", 9, 1.3), ("b", 23, 2.0), ("b", 5, 0.1)]:
    add("gaussian_blur", image, dict(kernel=k, sigma=s), F.gaussian_blur(tensors[image], [k, k], [s, s]))
add("solarize", "a", dict(threshold=0.5), F.solarize(tensors["a"], 0.5))
mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
add("normalize", "a", dict(mean=mean, std=std), F.normalize(tensors["a"], mean, std))

# Evaluation view: Resize(size) on the shorter side, then CenterCrop(size).
for image, size in [("b", 32), ("a", 16), ("a", 40), ("b", 48)]:
    t = F.resize(tensors[image], size, BIL, antialias=True)
    add("eval", image, dict(size=size), F.center_crop(t, [size, size]))

# Whole composition with fixed parameters, in SimCLR order:
# crop -> flip -> colour jitter (given order) -> grayscale -> blur -> solarize -> normalize.
JIT = {0: "brightness", 1: "contrast", 2: "saturation", 3: "hue"}


def compose(image, p):
    t = tensors[image]
    c = p["crop"]
    t = F.resized_crop(t, c["top"], c["left"], c["h"], c["w"], [p["size"], p["size"]], BIL, antialias=True)
    if p["flip"]:
        t = F.hflip(t)
    if p["jitter"]:
        j = p["jitter_params"]
        for op in j["order"]:
            name = JIT[op]
            fn = dict(brightness=F.adjust_brightness, contrast=F.adjust_contrast,
                      saturation=F.adjust_saturation, hue=F.adjust_hue)[name]
            t = fn(t, j[name])
    if p["gray"]:
        t = F.rgb_to_grayscale(t, num_output_channels=3)
    if p["blur"]:
        k = p["blur_kernel"]
        t = F.gaussian_blur(t, [k, k], [p["blur_sigma"], p["blur_sigma"]])
    if p["solarize"]:
        t = F.solarize(t, 0.5)
    return F.normalize(t, p["mean"], p["std"])


composites = [
    ("a", dict(size=32, crop=dict(top=3, left=4, h=20, w=25), flip=True, jitter=True,
               jitter_params=dict(order=[2, 0, 3, 1], brightness=1.3, contrast=0.7, saturation=1.5, hue=0.08),
               gray=False, blur=False, blur_sigma=0.0, blur_kernel=3, solarize=False,
               mean=[0.4914, 0.4822, 0.4465], std=[0.2470, 0.2435, 0.2616])),
    ("b", dict(size=48, crop=dict(top=5, left=9, h=37, w=41), flip=False, jitter=True,
               jitter_params=dict(order=[1, 3, 0, 2], brightness=0.6, contrast=1.4, saturation=0.3, hue=-0.15),
               gray=True, blur=True, blur_sigma=1.1, blur_kernel=5, solarize=True,
               mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])),
    ("b", dict(size=40, crop=dict(top=0, left=20, h=30, w=23), flip=True, jitter=False,
               jitter_params=None, gray=False, blur=True, blur_sigma=1.7, blur_kernel=5, solarize=False,
               mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])),
    ("a", dict(size=24, crop=dict(top=10, left=2, h=8, w=9), flip=False, jitter=True,
               jitter_params=dict(order=[3, 2, 1, 0], brightness=1.8, contrast=0.2, saturation=0.0, hue=0.5),
               gray=False, blur=False, blur_sigma=0.0, blur_kernel=3, solarize=True,
               mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25])),
]
for image, p in composites:
    add("compose", image, p, compose(image, p))

doc = dict(
    generator="augment/gen_goldens.py",
    torch=torch.__version__, torchvision=torchvision.__version__,
    note="float32 CHW tensors in [0,1]; values rounded to 6 decimals; resize is bilinear with antialias=True",
    images={k: dict(w=int(v.shape[2]), h=int(v.shape[1]), pix=flat(torch.from_numpy(v))) for k, v in images.items()},
    cases=cases,
)
os.makedirs(os.path.dirname(args.out), exist_ok=True)
with open(args.out, "w") as f:
    json.dump(doc, f, separators=(",", ":"))
print(f"wrote {args.out}: {len(cases)} cases, {os.path.getsize(args.out)} bytes")
