#!/usr/bin/env bash
# Installs what simclr needs on Debian/Ubuntu (run as root): Go's cgo
# toolchain, oneDNN, libjpeg-turbo and Open MPI (for `mpirun -np N simclr
# pretrain`; see the README). Safe to re-run: it installs only what is missing.
set -euo pipefail
export PATH="$PATH:/usr/local/go/bin"
need=()
dpkg -s libdnnl-dev >/dev/null 2>&1 || need+=(libdnnl-dev)
dpkg -s libjpeg62-turbo-dev >/dev/null 2>&1 || need+=(libjpeg62-turbo-dev)
dpkg -s libopenmpi-dev >/dev/null 2>&1 || need+=(libopenmpi-dev)
command -v mpirun >/dev/null 2>&1 || need+=(openmpi-bin)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
command -v gcc >/dev/null 2>&1 || need+=(gcc)
command -v go >/dev/null 2>&1 || need+=(golang-go)
if [ ${#need[@]} -gt 0 ]; then
	echo "setup: installing ${need[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq "${need[@]}" >/dev/null
fi
go version >&2
