package eval

import (
	"github.com/simclr-go/simclr/engine"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

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

// Products writes c[m, n] = a[m, dim] · b[n, dim]ᵀ (row-major) with be's
// GEMM, or with gonum's pure-Go GEMM when be is nil (see ProductBackend):
// kNN's similarities and serve's search scores.
func Products(be engine.Backend, c, a, b []float32, m, n, dim int) {
	if be != nil {
		be.MatMul(engine.FromData(c, m, n), engine.FromData(a, m, dim), engine.FromData(b, n, dim), false, true, 1, 0)
		return
	}
	blas32.Gemm(blas.NoTrans, blas.Trans, 1,
		blas32.General{Rows: m, Cols: dim, Stride: dim, Data: a},
		blas32.General{Rows: n, Cols: dim, Stride: dim, Data: b},
		0, blas32.General{Rows: m, Cols: n, Stride: n, Data: c})
}
