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
// For 3x3 stride-1 convolutions a Winograd algorithm is used where it
// measures faster on first use: oneDNN's F(4x4,3x3) where oneDNN has it
// (AVX-512 CPUs), and on AVX2 CPUs, where oneDNN 2.x has none, the engine's
// own F(2x2,3x3) (wino.h: forward, backward data and backward weights on
// 8-channel blocks, pad 1, even sides, no bias; the 16 products of each
// run through dnnl_sgemm). The candidates are timed against the direct
// kernel, alternately, on a prefix of the first batch (for the engine's
// kernel only when a call is worth at least 0.2 GFLOP); the engine's kernel
// must win by 5%. On the 2-core AVX2 box it took every 3x3 stride-1 layer
// of a full-width ResNet-18 (1.3-1.9x faster per layer than oneDNN's direct
// kernel) and the 32-128 channel ones of width 1/4. SIMCLR_CONV_ALGO=
// direct|winograd|auto (default auto) forces a choice; "winograd" still
// uses direct convolution for shapes no Winograd kernel covers. The tests
// hold direct algorithms to a relative error (max|a-b| / max(1, max|ref|))
// of 1e-4 against the float64-accumulating Reference; the engine's
// F(2x2,3x3) meets the same bound (its transforms only add, subtract and
// halve); oneDNN's F(4x4,3x3) is held to 2e-3, a bound from its
// documentation. With ONEDNN_VERBOSE set the engine's kernel prints exec
// lines in oneDNN's format (implementation "simclr:wino_f2x3").
//
// Memory-bound kernels (eltwise, binary, reorders, pooling) run on the
// whole OpenMP pool. Batch norm is built both ways and each plan runs on
// one thread or the pool, whichever its first call measured faster:
// oneDNN's JIT batch norm spins at barriers inside the kernel, which made
// it 5-10x slower on 2 threads when another process held a core.
// SIMCLR_DNNL_SERIAL_MEMOPS=1 (or 0) puts every memory-bound kernel on one
// thread (or the pool), read when the backend is created.
//
// # Reproducibility
//
// The two ways of each choice round differently, so each backend makes
// every choice once, on the first call of a shape, and keeps it (tune.go;
// a backend that times starts from the choices of the process's earlier
// ones, so a process runs each shape one way);
// with a fixed thread count every kernel is then deterministic (static
// OpenMP schedules, reductions in thread order). The choices that were
// timed are the backend's engine.Tuning: a resumed training run gives the
// saved ones back (SetTuning) and so runs every kernel as before.
// Options.Deterministic replaces timing by a fixed rule (fixedConvWino;
// batch norm on one thread), so that two fresh processes agree bit for bit.
// Results still depend on the thread count, the CPU's instruction set and
// the oneDNN version.
//
// Accuracy measured on an AVX2 machine (direct algorithms): every kernel
// within 8e-7 of the Reference (largest: convolutions); the gradients of a
// small residual network through the Tape within the tests' 1e-3 bound.
//
// Built with -tags purego or CGO_ENABLED=0, New returns an error and
// Available reports false.
package dnnl
