// Package dnnl is simclr's engine.Backend on Intel oneDNN (Debian's
// libdnnl-dev, 2.x or 3.x), called through cgo.
//
// Every oneDNN call runs on one goroutine locked to one OS thread: libgomp
// keeps an OpenMP thread pool per calling OS thread, and Go would otherwise
// spread calls over many threads and create a pool for each.
//
// Each kernel is a cached plan (primitive, reorders, scratchpad) created the
// first time an (op, shapes, layouts, params) combination is seen, so the
// steady state of a training step allocates no oneDNN memory. 4-D
// activations whose channel count is a multiple of the CPU's preferred block
// (16 on AVX-512, 8 on AVX2) are kept in oneDNN's blocked layout
// (engine.Blocked16 / engine.Blocked8) between kernels; weights stay OIHW in
// Go and are reordered inside each convolution call.
//
// For 3x3 stride-1 convolutions the Winograd algorithm is used where oneDNN
// implements it (AVX-512 CPUs) and measures faster on first use (a few timed
// runs of each when the plan is created); set SIMCLR_CONV_ALGO=direct|
// winograd|auto (default auto) to force a choice. "winograd" still uses
// direct convolution for shapes Winograd does not cover. Winograd is less
// accurate: the tests hold direct algorithms to a relative error (max|a-b| /
// max(1, max|ref|)) of 1e-4 against the float64-accumulating Reference, and
// Winograd to 2e-3, a bound from oneDNN's documented F(4x4,3x3) behaviour
// that has not been measured on an AVX-512 machine yet.
//
// Accuracy measured on an AVX2 machine (direct algorithms): every kernel
// within 8e-7 of the Reference (largest: convolutions); the gradients of a
// small residual network through the Tape within the tests' 1e-3 bound.
//
// Built with -tags purego or CGO_ENABLED=0, New returns an error and
// Available reports false.
package dnnl
