#!/usr/bin/env python3
"""Predicted step time and scaling efficiency of simclr's data-parallel
pretraining (docs/distributed.md), from bytes per step and a link model.

Per step and rank (N ranks, global batch B, P parameters, BN layers with
C_total channels, projections of 128 floats):
  gradient allreduce   ring: 2(N-1)/N * 4P bytes, one call per 1 MiB bucket
  z all-gather         (N-1) * (2B/N) * 128 * 4 bytes received
  BN forward           all-gather of (1 + 2C) float64 per layer: (N-1)*8*(L + 2*C_total) received
  BN backward          allreduce of 2C float64 per layer: ring 2(N-1)/N * 16 * C_total
Time = bytes / bandwidth + calls * latency * ceil(log2 N) (latency-bound
small collectives take log2 N rounds), no overlap with compute. Compute
per step = 3 x forward FLOPs x 2B views / (node GFLOP/s), split over N.
Numbers for the models come from nn (printed by the zzcalc snippet in the
doc); the node speed is an assumption stated in the doc.
"""
import math

MODELS = {
    # name: params, BN layers, BN channels, forward GFLOP per view, batch B
    "R18 (CIFAR, 32 px, B=512)": (11_505_856, 21, 5312, 1.111, 512),
    "R50 (ImageNet, 224 px, B=4096)": (27_970_752, 54, 28608, 8.18, 4096),
    "R50x2 (ImageNet, 224 px, B=4096)": (111_220_992, 54, 57216, 32.26, 4096),
}
NODE_GFLOPS = 1500.0  # one 64-core AVX2/AVX-512 node at ~23 GFLOP/s/core (this box: 22 per core)
LATENCY = 25e-6       # MPI over TCP on Ethernet, per message round
BUCKET = 1 << 20


def step(model, n, gbps):
    p, layers, chans, gflop, B = MODELS[model]
    bw = gbps * 1e9 / 8
    compute = 3 * gflop * 2 * B / NODE_GFLOPS / n
    if n == 1:
        return compute, 0.0, {}
    rounds = math.ceil(math.log2(n))
    grad_b = 2 * (n - 1) / n * 4 * p
    z_b = (n - 1) * (2 * B / n) * 128 * 4
    bnf_b = (n - 1) * 8 * (layers + 2 * chans)
    bnb_b = 2 * (n - 1) / n * 16 * chans
    calls = math.ceil(4 * p / BUCKET) + 1 + 2 * layers
    comm = (grad_b + z_b + bnf_b + bnb_b) / bw + calls * LATENCY * rounds
    return compute, comm, {"grad": grad_b, "z": z_b, "bn": bnf_b + bnb_b}


def main():
    print("| model (N=64) | gradient allreduce | z all-gather | BN statistics |")
    print("|---|---|---|---|")
    for m in MODELS:
        _, _, b = step(m, 64, 10)
        print(f"| {m} | {b['grad']/1e6:.1f} MB | {b['z']/1e6:.1f} MB | {b['bn']/1e6:.2f} MB |")
    for m in MODELS:
        t1, _, _ = step(m, 1, 10)
        print(f"\n**{m}**: one node {t1:.1f} s/step (compute only)\n")
        print("| nodes | " + " | ".join(f"{g} Gb/s: step s (eff.)" for g in (10, 25, 100)) + " |")
        print("|---|---|---|---|")
        for n in (2, 4, 8, 16, 32, 64):
            cells = []
            for g in (10, 25, 100):
                c, k, _ = step(m, n, g)
                cells.append(f"{c + k:.3f} ({t1 / n / (c + k):.0%})")
            print(f"| {n} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
