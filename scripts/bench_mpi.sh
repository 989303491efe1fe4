#!/usr/bin/env bash
# Data-parallel figures for docs/distributed.md (issue 10), on one machine:
# ResNet-18 width 1/4, CIFAR stem, B=256 (global), synthetic inputs.
#  1. pairs, alternating: 1 process x 2 threads, then mpirun -np 2 x 1 thread
#     (global img/s, communication ms per step);
#  2. MPI_Allreduce latency/bandwidth over loopback (shared memory);
#  3. per-rank peak RSS at 1, 2 and 4 ranks;
#  4. PyTorch DDP (gloo) 2 processes x 1 thread, same model and batch, when
#     ../shared/reference/torch_ddp_ref.py and torch are there.
# Usage: scripts/bench_mpi.sh [PAIRS] (default 3). Needs bin/simclr built
# with -tags mpi (scripts/demo.sh builds it). Prints JSON lines.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
pairs=${1:-3}
bin=${SIMCLR_BIN:-bin/simclr}
[ -x "$bin" ] || go build -tags mpi -o "$bin" ./cmd/simclr
flags="--arch resnet18 --width 0.25 --stem cifar --batch 256 --steps ${STEPS:-5} --warmup 2"
for i in $(seq "$pairs"); do
	echo "# pair $i" >&2
	"$bin" bench $flags --threads 2
	mpirun --oversubscribe -np 2 "$bin" bench $flags --threads 1
done
mpirun --oversubscribe -np 2 "$bin" bench --mode allreduce --steps 20
for n in 1 2 4; do
	mpirun --oversubscribe -np "$n" "$bin" bench $flags --threads 1 --steps 2 --warmup 1
done
ddp=../shared/reference/torch_ddp_ref.py
if [ -f "$ddp" ] && /usr/bin/python3 -c 'import torch' 2>/dev/null; then
	for i in $(seq "$pairs"); do
		/usr/bin/python3 "$ddp" --procs 2 --threads 1 --arch resnet18w4 --batch 256 --steps "${STEPS:-5}"
		mpirun --oversubscribe -np 2 "$bin" bench $flags --threads 1 --bn local
	done
fi
