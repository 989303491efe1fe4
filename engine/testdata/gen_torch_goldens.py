"""Generate torch_goldens.json: PyTorch forward outputs and gradients that the
engine's Reference backend is checked against (engine/golden_test.go).

Run with the Debian Python that has torch:  /usr/bin/python3 gen_torch_goldens.py
Inputs are float32 values; PyTorch computes in float64 so the goldens are
exact to float32 precision. Every gradient is of L = sum(R * out) for the
stored random R.
"""
import json
import torch
import torch.nn.functional as F

torch.manual_seed(1234)
cases = []


def f32(t):
    return t.float().double()


def rnd(*shape):
    return f32(torch.rand(*shape, dtype=torch.float64) * 2 - 1).requires_grad_(True)


def enc(t):
    return {"shape": list(t.shape), "data": [float(v) for v in t.detach().reshape(-1).tolist()]}


def add(op, params, inputs, out, extra_out=None):
    R = f32(torch.rand(*out.shape, dtype=torch.float64) * 2 - 1)
    (out * R).sum().backward()
    c = {"op": op, "params": params,
         "inputs": {k: enc(v) for k, v in inputs.items()},
         "R": enc(R), "out": enc(out),
         "grads": {k: enc(v.grad) for k, v in inputs.items() if v.requires_grad and v.grad is not None}}
    if extra_out:
        c["extra"] = {k: enc(v) for k, v in extra_out.items()}
    cases.append(c)


for (n, c, h, w, o, k, s, p, bias) in [(2, 3, 7, 6, 4, 3, 1, 1, True), (1, 2, 9, 8, 3, 7, 2, 3, False),
                                       (3, 4, 5, 5, 2, 1, 2, 0, True), (1, 3, 8, 8, 5, 3, 2, 1, True)]:
    x, wt = rnd(n, c, h, w), rnd(o, c, k, k)
    ins = {"x": x, "w": wt}
    b = None
    if bias:
        b = rnd(o)
        ins["b"] = b
    add("conv", {"stride": s, "pad": p}, ins, F.conv2d(x, wt, b, stride=s, padding=p))

for shape, train, relu in [([4, 3, 5, 5], True, False), ([2, 5, 3, 4], True, True), ([6, 4], True, False),
                           ([2, 3, 4, 4], False, True), ([5, 3], False, False)]:
    C = shape[1]
    x, g, b = rnd(*shape), rnd(C), rnd(C)
    rm = f32(torch.rand(C, dtype=torch.float64) - 0.5)
    rv = f32(torch.rand(C, dtype=torch.float64) + 0.5)
    rm0, rv0 = rm.clone(), rv.clone()
    y = F.batch_norm(x, rm, rv, g, b, training=train, momentum=0.1, eps=1e-5)
    if relu:
        y = F.relu(y)
    add("batchnorm", {"train": train, "relu": relu}, {"x": x, "gamma": g, "beta": b}, y,
        {"running_mean_before": rm0, "running_var_before": rv0, "running_mean": rm, "running_var": rv})

for shape, k, s, p in [([2, 3, 9, 9], 3, 2, 1), ([1, 2, 8, 7], 3, 2, 1), ([1, 1, 6, 6], 2, 2, 0)]:
    x = rnd(*shape)
    add("maxpool", {"k": k, "stride": s, "pad": p}, {"x": x}, F.max_pool2d(x, k, s, p))

x = rnd(3, 4, 3, 5)
add("gap", {}, {"x": x}, F.adaptive_avg_pool2d(x, 1).reshape(3, 4))

x, w, b = rnd(5, 7), rnd(3, 7), rnd(3)
add("linear", {}, {"x": x, "w": w, "b": b}, F.linear(x, w, b))

for ta in (False, True):
    for tb in (False, True):
        a = rnd(*((4, 3) if ta else (3, 4)))
        bb = rnd(*((5, 4) if tb else (4, 5)))
        add("matmul", {"transA": ta, "transB": tb}, {"a": a, "b": bb},
            (a.t() if ta else a) @ (bb.t() if tb else bb))

x = rnd(4, 6) * 3
x = f32(x.detach()).requires_grad_(True)
add("logsoftmax", {}, {"x": x}, F.log_softmax(x, dim=1))
x = rnd(5, 4)
add("crossentropy", {"labels": [0, 3, 1, 1, 2]}, {"x": x}, F.cross_entropy(x, torch.tensor([0, 3, 1, 1, 2])).reshape(1))
x = rnd(4, 6)
add("l2normalize", {"eps": 1e-12}, {"x": x}, F.normalize(x, dim=1, eps=1e-12))

# A small ResNet: strided stem, BN+ReLU, max-pool, a basic block and a
# downsampling block, GAP, linear, log-softmax. Checks the tape's graph
# handling (reuse, residual adds) with an oracle that is immune to ReLU kinks.
P = {"x": rnd(2, 3, 9, 9), "w1": rnd(8, 3, 3, 3), "w2": rnd(8, 8, 3, 3), "w3": rnd(8, 8, 3, 3),
     "w4": rnd(16, 8, 3, 3), "wd": rnd(16, 8, 1, 1), "fc": rnd(5, 16), "fb": rnd(5)}
for k, c in [("1", 8), ("2", 8), ("3", 8), ("4", 16), ("d", 16)]:
    P["g" + k], P["b" + k] = rnd(c), rnd(c)


def bn(t, k):
    return F.batch_norm(t, None, None, P["g" + k], P["b" + k], training=True, eps=1e-5)


h = F.relu(bn(F.conv2d(P["x"], P["w1"], stride=2, padding=1), "1"))
h = F.max_pool2d(h, 3, 2, 1)
a = F.relu(bn(F.conv2d(h, P["w2"], padding=1), "2"))
h = F.relu(bn(F.conv2d(a, P["w3"], padding=1), "3") + h)
a = bn(F.conv2d(h, P["w4"], stride=2, padding=1), "4")
h = F.relu(a + bn(F.conv2d(h, P["wd"], stride=2), "d"))
add("resnet", {}, P, F.log_softmax(F.linear(F.adaptive_avg_pool2d(h, 1).flatten(1), P["fc"], P["fb"]), dim=1))

with open("torch_goldens.json", "w") as f:
    json.dump({"torch": torch.__version__, "cases": cases}, f)
print(len(cases), "cases")
