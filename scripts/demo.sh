#!/usr/bin/env bash
# The main job on a fresh machine: install what is missing, build simclr, and
# pretrain a small ResNet-18 on the embedded Fashion-MNIST test set for a few
# minutes, printing kNN accuracy before (random init) and after training.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PATH:/usr/local/go/bin"
mkdir -p bin
go build -o bin/simclr ./cmd/simclr
rm -rf runs/demo
bin/simclr pretrain --out runs/demo ${DEMO_FLAGS:---width 0.25 --batch 128 --epochs 2 --lr 1.0 --knn-every 1 --checkpoint-every 0}
echo "demo: curves in runs/demo/plots/, checkpoints in runs/demo/checkpoints/" >&2
