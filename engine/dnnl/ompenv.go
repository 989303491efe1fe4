//go:build cgo && !purego && linux

package dnnl

import (
	"os"
	"syscall"
)

// GNU OpenMP's idle pool threads spin for GOMP_SPINCOUNT iterations (300000
// by default: about 8 ms on AMD Zen, where `pause` is slow) after every
// parallel region before they sleep. Between convolutions the oneDNN thread
// runs serial work (the Go side of the step, batch norm on a busy machine); when
// another process holds a core, the spinning worker takes the core that work
// needs, and each serial kernel after a convolution waited a scheduler slice.
// R18 w/4 B=256 training on the 2-core box, one core busy elsewhere:
// 79 img/s with the default, 108 with OMP_WAIT_POLICY=passive.
//
// libgomp reads its settings once, when it is loaded, before any Go or cgo
// code runs, so the only way to change them is the environment of a fresh
// image. A library should not re-execute its importer behind its back, so
// this is a function that programs call first thing in main (cmd/simclr
// does): if the user set neither OMP_WAIT_POLICY nor GOMP_SPINCOUNT, the
// process re-executes itself once with OMP_WAIT_POLICY=passive. The PID,
// arguments and open files are unchanged. SIMCLR_OMP_REEXEC=0 turns this
// off (for debuggers, or to measure the default). It returns only when no
// re-execution happened.
func SetupProcess() {
	if os.Getenv("OMP_WAIT_POLICY") != "" || os.Getenv("GOMP_SPINCOUNT") != "" ||
		os.Getenv("SIMCLR_OMP_REEXEC") == "0" {
		return
	}
	env := append(os.Environ(), "OMP_WAIT_POLICY=passive")
	// On failure (no /proc, exec not allowed) keep running with the default.
	_ = syscall.Exec("/proc/self/exe", os.Args, env)
}
