#!/usr/bin/python3
"""Golden values and gradients of SupCon (Khosla et al. 2020, L_out) for the Go loss package.

usage: /usr/bin/python3 loss/gen_supcon_goldens.py [--out loss/testdata/supcon_vectors.json]

Needs torch (Debian python3-torch). The loss is the reference implementation's
(github.com/HobbitLong/SupContrast, losses.py, SupConLoss with contrast_mode='all',
two views, including its fix for anchors without positives), transcribed below with
the factor temperature/base_temperature set to 1. Each case is checked against an
explicit per-anchor loop and one finite difference before it is written. Every
number is float64; the Go tests feed the float32 rounding of z (the inputs are
rounded to float32 here first, so both sides start from the same point)."""
import argparse
import json
import os

import torch
import torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "testdata", "supcon_vectors.json"))
args = ap.parse_args()

DEFINITION = (
    "SupCon L_out (Khosla et al. 2020, eq. 2). Inputs z1, z2: N x d (row r of z1 and row r of z2 are the two views "
    "of image r, whose class is labels[r]). Stack z = [z1; z2] (2N x d). u_k = z_k / max(||z_k||_2, 1e-12). "
    "s_ik = (u_i . u_k) / temperature. For anchor i the positives P(i) are the rows k != i with the same label "
    "(always including i's other view); l_i = -(1/|P(i)|) sum_{p in P(i)} [ s_ip - logsumexp_{k != i} s_ik ]. "
    "loss = mean over the 2N anchors. grad_z1, grad_z2 are d loss / d z1, d z2 through the normalisation. "
    "per_anchor_loss lists l_i in row order. All numbers float64, by torch autograd."
)


def supcon_reference(features, labels, temperature):
    """SupConLoss.forward of the reference code: features [bsz, n_views, dim] (already
    normalised), labels [bsz]; contrast_mode 'all'; temperature/base_temperature = 1."""
    batch_size = features.shape[0]
    labels = labels.contiguous().view(-1, 1)
    mask = torch.eq(labels, labels.T).to(features.dtype)
    contrast_count = features.shape[1]
    contrast_feature = torch.cat(torch.unbind(features, dim=1), dim=0)
    anchor_feature = contrast_feature
    anchor_count = contrast_count
    anchor_dot_contrast = torch.div(torch.matmul(anchor_feature, contrast_feature.T), temperature)
    logits_max, _ = torch.max(anchor_dot_contrast, dim=1, keepdim=True)
    logits = anchor_dot_contrast - logits_max.detach()
    mask = mask.repeat(anchor_count, contrast_count)
    logits_mask = torch.scatter(torch.ones_like(mask), 1,
                                torch.arange(batch_size * anchor_count).view(-1, 1), 0)
    mask = mask * logits_mask
    exp_logits = torch.exp(logits) * logits_mask
    log_prob = logits - torch.log(exp_logits.sum(1, keepdim=True))
    mask_pos_pairs = mask.sum(1)
    mask_pos_pairs = torch.where(mask_pos_pairs < 1e-6, torch.ones_like(mask_pos_pairs), mask_pos_pairs)
    mean_log_prob_pos = (mask * log_prob).sum(1) / mask_pos_pairs
    per = -mean_log_prob_pos
    return per.view(anchor_count, batch_size).mean(), per


def supcon(z1, z2, labels, t):
    u = F.normalize(torch.cat([z1, z2], 0), dim=1)
    n = z1.shape[0]
    return supcon_reference(torch.stack([u[:n], u[n:]], dim=1), labels, t)


def explicit(z1, z2, labels, t):
    """The definition, anchor by anchor, with no masks."""
    n = z1.shape[0]
    u = F.normalize(torch.cat([z1, z2]), dim=1)
    s = u @ u.t() / t
    lab = list(labels.tolist()) * 2
    out = []
    for i in range(2 * n):
        others = torch.cat([s[i, :i], s[i, i + 1:]])
        lse = torch.logsumexp(others, 0)
        pos = [k for k in range(2 * n) if k != i and lab[k] == lab[i]]
        out.append(sum(lse - s[i, k] for k in pos) / len(pos))
    return torch.stack(out)


def rows(x):
    return [[float(v) for v in r] for r in x.tolist()]


def nt_xent(z1, z2, t):
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2], 0), dim=1)
    sim = (z @ z.t()) / t
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return F.cross_entropy(sim, target)


# (name, N, d, seed, labels, temperatures)
CASES = [
    ("three_classes_one_alone", 8, 16, 1, [0, 1, 2, 1, 0, 1, 0, 1], (0.5, 0.1)),
    ("odd_d3", 5, 3, 2, [4, 4, 9, 4, 9], (0.5,)),
    ("one_class_no_negatives", 4, 7, 3, [2, 2, 2, 2], (0.5,)),
    ("distinct_is_ntxent", 6, 5, 4, [0, 1, 2, 3, 4, 5], (0.5,)),
    ("single_image", 1, 5, 5, [3], (0.5,)),
    ("small_tau", 6, 9, 6, [0, 0, 1, 1, 1, 2], (0.05, 0.01)),
    ("large_labels", 3, 4, 7, [1000000, -7, 1000000], (0.2,)),
    ("many_tiles", 100, 8, 8, [i % 5 for i in range(100)], (0.2,)),
]

torch.set_num_threads(1)
cases = []
for name, n, d, seed, labels, temps in CASES:
    g = torch.Generator().manual_seed(seed)
    z1 = torch.randn(n, d, generator=g, dtype=torch.float64).float().double()
    z2 = torch.randn(n, d, generator=g, dtype=torch.float64)
    if name == "small_tau":  # near-parallel views: logits at 1/tau
        z2 = 2.0 * z1 + 0.05 * z2
    z2 = z2.float().double()
    lab = torch.tensor(labels)
    for t in temps:
        a = z1.clone().requires_grad_(True)
        b = z2.clone().requires_grad_(True)
        loss, per = supcon(a, b, lab, t)
        loss.backward()
        ex = explicit(z1, z2, lab, t)
        assert torch.allclose(ex, per.detach(), rtol=1e-12, atol=1e-12), (name, ex, per)
        if len(set(labels)) == n:
            assert abs(float(nt_xent(z1, z2, t)) - float(loss)) < 1e-12
        eps = 1e-6
        zp = z2.clone(); zp[0, 0] += eps
        zm = z2.clone(); zm[0, 0] -= eps
        fd = (float(supcon(z1, zp, lab, t)[0]) - float(supcon(z1, zm, lab, t)[0])) / (2 * eps)
        assert abs(fd - float(b.grad[0, 0])) < 1e-6 * max(1, abs(fd)), (name, fd, float(b.grad[0, 0]))
        cases.append(dict(name=f"{name}_T{t}", N=n, d=d, temperature=t, seed=seed, labels=labels,
                          z1=rows(z1), z2=rows(z2), loss=float(loss),
                          per_anchor_loss=[float(v) for v in per.tolist()],
                          grad_z1=rows(a.grad), grad_z2=rows(b.grad)))

doc = dict(definition=DEFINITION, dtype="float64", produced_by="loss/gen_supcon_goldens.py",
           torch_version=torch.__version__, cases=cases)
with open(args.out, "w") as f:
    json.dump(doc, f, indent=1)
print("wrote", len(cases), "cases:", [(c["name"], round(c["loss"], 6)) for c in cases])
