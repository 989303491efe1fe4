#!/usr/bin/env bash
# The main job on a fresh machine: install what is missing, build simclr, and
# pretrain a small ResNet-18 on the embedded Fashion-MNIST test set for a few
# minutes, printing kNN accuracy before (random init) and after training.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PATH:/usr/local/go/bin"
mkdir -p bin
# -tags mpi: the binary also runs under mpirun (data-parallel, README).
go build -tags mpi -o bin/simclr ./cmd/simclr
rm -rf runs/demo
# Width 1/8 and batch 64 give enough steps in a few minutes on 2 cores; crops
# keep at least half of the 28-px garment (0.08 of it is a few pixels).
bin/simclr pretrain --out runs/demo ${DEMO_FLAGS:---width 0.125 --batch 64 --epochs 5 --optimizer sgd --lr 0.1 --lr-scaling none --weight-decay 5e-4 --warmup-epochs 0 --augment.crop-scale-min 0.5 --knn-every 5 --checkpoint-every 0}
echo "demo: curves in runs/demo/plots/, checkpoints in runs/demo/checkpoints/" >&2
