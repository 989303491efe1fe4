#!/usr/bin/python3
"""Load an encoder exported by `simclr export` into torchvision's ResNet and
check that it reproduces simclr's embeddings.

    /usr/bin/python3 scripts/check_export.py --export encoder.safetensors \
        --images images.f32 --embeddings h.f32 [--tol 1e-4]

--export, --images and --embeddings may be repeated to check several exports in
one process (importing torch is the slow part).

images.f32: raw little-endian float32 network inputs [N, 3, S, S] (already
normalised); embeddings.f32: simclr's h for them, [N, D]. N, S and D come from
the sizes of the files and the export's metadata. Prints one JSON line and exits
with status 1 if any embedding differs by more than --tol (absolute), 3 if torch,
torchvision or numpy is missing.

Needs only torch, torchvision and numpy: the safetensors file is parsed here
(8-byte header length, JSON header, raw data), so the `safetensors` package is
not required. The state_dict is loaded with strict=True.
"""
import argparse
import json
import struct
import sys

try:
    import numpy as np
    import torch
    import torchvision
    from torch import nn
    from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet
except ImportError as e:  # lets callers tell "cannot check" from "wrong"
    print(json.dumps({"ok": False, "missing": str(e)}))
    sys.exit(3)

DTYPES = {"F32": np.float32, "I64": np.int64}


def read_safetensors(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        blob = f.read()
    meta = header.pop("__metadata__", {}) or {}
    sd = {}
    for name, info in header.items():
        a, b = info["data_offsets"]
        arr = np.frombuffer(blob[a:b], dtype=DTYPES[info["dtype"]]).reshape(info["shape"])
        sd[name] = torch.from_numpy(arr.copy())
    return sd, meta


def build_resnet(meta):
    """torchvision's ResNet with simclr's arch, width and stem, fc removed."""
    block, layers = {
        "resnet18": (BasicBlock, [2, 2, 2, 2]),
        "resnet34": (BasicBlock, [3, 4, 6, 3]),
        "resnet50": (Bottleneck, [3, 4, 6, 3]),
    }[meta["arch"]]
    base = int(meta["base_channels"])
    m = ResNet(block, layers)
    # Rebuild the trunk for the width (a no-op rebuild when base == 64);
    # _make_layer reads and advances m.inplanes.
    m.inplanes = base
    if meta["stem"] == "cifar":
        m.conv1 = nn.Conv2d(int(meta.get("in_channels", 3)), base, 3, 1, 1, bias=False)
        m.maxpool = nn.Identity()
    else:
        m.conv1 = nn.Conv2d(int(meta.get("in_channels", 3)), base, 7, 2, 3, bias=False)
    m.bn1 = nn.BatchNorm2d(base)
    m.layer1 = m._make_layer(block, base, layers[0])
    m.layer2 = m._make_layer(block, base * 2, layers[1], stride=2)
    m.layer3 = m._make_layer(block, base * 4, layers[2], stride=2)
    m.layer4 = m._make_layer(block, base * 8, layers[3], stride=2)
    m.fc = nn.Identity()
    return m


def check(export, images, embeddings, tol):
    sd, meta = read_safetensors(export)
    model = build_resnet(meta)
    model.load_state_dict(sd, strict=True)
    model.eval()

    d = int(meta["out_dim"])
    c = int(meta.get("in_channels", 3))
    h_go = np.fromfile(embeddings, dtype="<f4").reshape(-1, d)
    n = h_go.shape[0]
    x = np.fromfile(images, dtype="<f4")
    s = int(round((x.size / (n * c)) ** 0.5))
    x = x.reshape(n, c, s, s)
    with torch.no_grad():
        h_pt = model(torch.from_numpy(x)).numpy()
    diff = float(np.abs(h_pt - h_go).max())
    scale = float(np.abs(h_go).max())
    ok = h_pt.shape == h_go.shape and diff <= tol
    print(json.dumps({"ok": ok, "export": export, "max_abs_diff": diff, "max_abs_h": scale, "n": n, "dim": d,
                      "arch": meta["arch"], "width": meta.get("width"), "stem": meta["stem"],
                      "torch": torch.__version__, "torchvision": torchvision.__version__}))
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--export", required=True, action="append")
    ap.add_argument("--images", required=True, action="append")
    ap.add_argument("--embeddings", required=True, action="append")
    ap.add_argument("--tol", type=float, default=1e-4)
    args = ap.parse_args()
    if not len(args.export) == len(args.images) == len(args.embeddings):
        ap.error("give as many --images and --embeddings as --export")
    ok = True
    for e, i, h in zip(args.export, args.images, args.embeddings):
        ok = check(e, i, h, args.tol) and ok
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
