package eval

import "github.com/simclr-go/simclr/engine"

// ProductBackend returns b when its kernels are tuned (engine.Caps.Tuned:
// oneDNN's float32 GEMM is several times faster than gonum's), for
// KNNWith's similarities and ProbeConfig.Backend, and nil otherwise: an
// untuned backend's GEMM (the reference's, written for clarity) is slower
// than the gonum path that nil selects. The choice is by property, never
// by name.
func ProductBackend(b engine.Backend) engine.Backend {
	if b == nil || !b.Caps().Tuned {
		return nil
	}
	return b
}
