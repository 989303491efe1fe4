"""Writes torchvision_names.json: the parameter and buffer names and shapes of
torchvision's resnet18/34/50 (fc removed) with the ImageNet stem (unchanged)
and the CIFAR stem (conv1 -> 3x3/1 pad 1, maxpool -> Identity), plus the two
projection heads as PyTorch nn.Sequential modules, in named_parameters() /
named_buffers() order. nn's tests compare the Go models' names against it.

usage: /usr/bin/python3 nn/testdata/gen_torchvision_names.py  (from the repo root)
"""
import json, os
import torch.nn as nn
import torchvision


def resnet(arch, stem):
    m = getattr(torchvision.models, arch)()
    if stem == "cifar":
        m.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        m.maxpool = nn.Identity()
    m.fc = nn.Identity()
    return m


def listing(m, prefix=""):
    ps = [[prefix + n, list(p.shape)] for n, p in m.named_parameters()]
    bs = [[prefix + n, list(b.shape)] for n, b in m.named_buffers()]
    return {"params": ps, "buffers": bs}


out = {}
for arch in ("resnet18", "resnet34", "resnet50"):
    for stem in ("imagenet", "cifar"):
        out[f"{arch}/{stem}"] = listing(resnet(arch, stem))

d = 512
v1 = nn.Sequential(nn.Linear(d, d), nn.BatchNorm1d(d), nn.ReLU(), nn.Linear(d, 128))
# google-research v2 head: bias-free linears, BN everywhere, last BN without
# centre (exported as a zero "bias" so it loads into BatchNorm1d).
v2 = nn.Sequential(nn.Linear(d, d, bias=False), nn.BatchNorm1d(d), nn.ReLU(),
                   nn.Linear(d, d, bias=False), nn.BatchNorm1d(d), nn.ReLU(),
                   nn.Linear(d, 128, bias=False), nn.BatchNorm1d(128))
out["head/v1/512"] = listing(v1, "head.")
out["head/v2/512"] = listing(v2, "head.")

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torchvision_names.json")
with open(path, "w") as f:
    # one entry per line: readable diffs
    keys = list(out)
    f.write("{\n")
    for i, k in enumerate(keys):
        f.write(json.dumps(k) + ": {\n")
        for j, kind in enumerate(("params", "buffers")):
            rows = ",\n".join("  " + json.dumps(e) for e in out[k][kind])
            f.write(f' "{kind}": [\n{rows}\n ]' + ("," if j == 0 else "") + "\n")
        f.write("}" + ("," if i < len(keys) - 1 else "") + "\n")
    f.write("}\n")
print("wrote", path)
