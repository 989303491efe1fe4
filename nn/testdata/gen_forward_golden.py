"""PyTorch golden for nn's forward pass (see nn/golden_test.go).

Reads forward_inputs.safetensors (written by the Go test with
-write-golden-inputs): weights of a ResNet-18 with CIFAR stem and width 1/8
(8-16-32-64 channels), a v1 and a v2 projection head (the latter prefixed
"v2."), and an input batch. Loads them into torchvision's own ResNet/
BasicBlock classes and nn.Sequential heads and writes
forward_golden.safetensors with

  h_eval, z1_eval, z2_eval      eval-mode outputs
  h_train, z1_train, z2_train   train-mode outputs (one forward)
  after_train.<name>            every BN running statistic after that forward

usage (repo root): /usr/bin/python3 nn/testdata/gen_forward_golden.py
Needs only torch, torchvision and numpy.
"""
import json, os, struct
import numpy as np
import torch
import torch.nn as nn
import torchvision
from torchvision.models.resnet import BasicBlock

HERE = os.path.dirname(os.path.abspath(__file__))


def read_st(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    hdr = json.loads(raw[8:8 + n])
    body = raw[8 + n:]
    out = {}
    for k, e in hdr.items():
        if k == "__metadata__":
            continue
        assert e["dtype"] == "F32", (k, e["dtype"])
        a, b = e["data_offsets"]
        out[k] = np.frombuffer(body[a:b], dtype="<f4").reshape(e["shape"]).copy()
    return out


def write_st(path, ts):
    names = sorted(ts)
    hdr, off, blobs = {}, 0, []
    for k in names:
        b = np.ascontiguousarray(ts[k], dtype="<f4").tobytes()
        hdr[k] = {"dtype": "F32", "shape": list(ts[k].shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(hdr).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def cifar_resnet18(base):
    """torchvision's resnet18 with every channel count scaled to base·2^i,
    CIFAR stem (3x3/1 conv, no max-pool) and fc removed."""
    m = torchvision.models.resnet18()
    m.inplanes = base
    m.conv1 = nn.Conv2d(3, base, 3, 1, 1, bias=False)
    m.bn1 = nn.BatchNorm2d(base)
    m.maxpool = nn.Identity()
    m.layer1 = m._make_layer(BasicBlock, base, 2)
    m.layer2 = m._make_layer(BasicBlock, 2 * base, 2, stride=2)
    m.layer3 = m._make_layer(BasicBlock, 4 * base, 2, stride=2)
    m.layer4 = m._make_layer(BasicBlock, 8 * base, 2, stride=2)
    m.fc = nn.Identity()
    return m


def head_v1(d, hidden, out):
    return nn.Sequential(nn.Linear(d, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, out))


def head_v2(d, hidden, out):
    return nn.Sequential(nn.Linear(d, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(),
                         nn.Linear(hidden, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(),
                         nn.Linear(hidden, out, bias=False), nn.BatchNorm1d(out))


def load(module, st, prefix, strip):
    sd = {k[len(strip):]: torch.from_numpy(v) for k, v in st.items() if k.startswith(prefix)}
    res = module.load_state_dict(sd, strict=False)
    assert not res.unexpected_keys, res.unexpected_keys
    assert all(k.endswith("num_batches_tracked") for k in res.missing_keys), res.missing_keys


def main():
    torch.set_num_threads(1)
    st = read_st(os.path.join(HERE, "forward_inputs.safetensors"))
    base = st["conv1.weight"].shape[0]
    hidden, out = st["head.0.weight"].shape[0], st["head.3.weight"].shape[0]
    enc = cifar_resnet18(base)
    g1 = head_v1(8 * base, hidden, out)
    g2 = head_v2(8 * base, hidden, out)
    load(enc, {k: v for k, v in st.items() if not k.startswith(("head.", "v2.", "input"))}, "", "")
    load(g1, st, "head.", "head.")
    load(g2, st, "v2.head.", "v2.head.")
    x = torch.from_numpy(st["input"])

    res = {}
    with torch.no_grad():
        for m in (enc, g1, g2):
            m.eval()
        h = enc(x)
        res["h_eval"], res["z1_eval"], res["z2_eval"] = h, g1(h), g2(h)
        for m in (enc, g1, g2):
            m.train()
        h = enc(x)
        res["h_train"], res["z1_train"], res["z2_train"] = h, g1(h), g2(h)
    for prefix, m in (("", enc), ("head.", g1), ("v2.head.", g2)):
        for k, b in m.state_dict().items():
            if "running_" in k:
                res["after_train." + prefix + k] = b
    write_st(os.path.join(HERE, "forward_golden.safetensors"), {k: v.numpy() for k, v in res.items()})
    print("wrote forward_golden.safetensors:", len(res), "tensors")


if __name__ == "__main__":
    main()
