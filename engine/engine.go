// Package engine is simclr's small deep-learning engine: float32 tensors,
// an eager reverse-mode autodiff tape, and the Backend seam that executes the
// heavy kernels.
//
// Model code (package nn, loss, ...) is written only against Tape's op
// methods. The heavy kernels behind them (convolution, batch norm, ReLU,
// add, pooling, GEMM) come from a Backend: the plain-Go Reference backend
// (the test oracle, always available) or the oneDNN backend in package
// engine/dnnl; package engine/backends chooses one by name, and
// engine/enginetest.CheckBackend is the conformance suite every backend
// passes.
//
// The seam is a CPU seam. Every tensor's data is host memory ([]float32),
// which callers read with Data(), and the rest of the work runs in Go on
// that memory: about ten tape ops (Mul, Scale, Linear's bias, L2Normalize,
// LogSoftmax, CrossEntropy, Mean/Sum, Concat/Split, gradient accumulation,
// batch norm's running statistics), NT-Xent's elementwise parts (package
// loss) and the optimizers' updates (package optim). A device (GPU) backend
// therefore needs more than one more Backend: docs/backends.md lists what,
// and the smallest interface change that allows it.
//
// # Layouts
//
// Tensors are NCHW (row-major) at the API. A backend may store a 4-D
// activation in a private blocked layout (Blocked16, oneDNN's nChw16c) when
// that avoids reorders between its kernels; such tensors have the same number
// of elements. Data panics on a blocked tensor: call Tape.Plain first.
// The Reference backend only ever produces Plain tensors.
//
// # Memory
//
// Every tensor an op creates is taken from the tape's pool and returned to it
// by Tape.Reset, so a training loop reuses the same buffers every step.
// Parameters (leaves created with New or FromData) and their gradients are
// ordinary Go memory that lives as long as the caller keeps it. During
// Backward the gradient of an intermediate tensor goes back to the pool as
// soon as the op that produced the tensor has consumed it, so after Backward
// only leaves have a Grad. Big tensors (64Ki elements and up) live in one
// arena per tape (Linux) and Backward frees each as soon as no op left to
// run can read it, so their memory holds the gradients still to come: read
// any big activation you need before Backward. Tape.PoolStats reports the
// pool's size.
//
// # Errors
//
// Ops panic on programmer errors (shape mismatch, empty batch, blocked data
// access) with a message of the form "engine: Conv2D: x [2 3 8 8] and w
// [4 5 3 3]: channels differ", naming the op and the shapes. They never read
// or write out of bounds.
package engine

// Layout is the memory order of a tensor's elements.
type Layout uint8

const (
	// Plain is row-major: NCHW for 4-D tensors, [rows, cols] for 2-D.
	Plain Layout = iota
	// Blocked16 is nChw16c: channels in blocks of 16 innermost. Only
	// backends produce it, and only for 4-D tensors whose C is a multiple of 16.
	Blocked16
	// Blocked8 is nChw8c, the AVX2 counterpart of Blocked16 (oneDNN's
	// convolutions on AVX2 CPUs have no fast nChw16c kernels). Only backends
	// produce it, and only for 4-D tensors whose C is a multiple of 8.
	Blocked8
)

// Tensor is a float32 n-dimensional array that may take part in autodiff.
type Tensor struct {
	shape  []int
	data   []float32
	layout Layout

	requiresGrad bool
	grad         *Tensor
	node         *node // the op that produced it; nil for leaves

	// Pool bookkeeping (see pool.go).
	pooled  bool    // data belongs to a tape's pool
	view    bool    // shares another tensor's data (Reshape)
	inUse   bool    // handed out by the pool and not yet returned
	aoff    int     // 1 + offset of its data in the pool's arena; 0 if not there
	saved   bool    // a recorded op consumed it and may read it in its backward (set by Tape.begin)
	gradFor *Tensor // set while this tensor is the (exclusively owned) gradient of gradFor
	outFree bool    // its producer's backward never reads it (set by Tape.begin; AddReLUInPlace may overwrite it)
}

// ConvParams describe a 2-D convolution (no groups, no dilation).
type ConvParams struct {
	StrideH, StrideW int
	PadH, PadW       int // symmetric zero padding
}

// BNParams describe one batch-norm call.
type BNParams struct {
	Eps   float32
	Train bool // batch statistics (true) or the given mean/variance (false)
	ReLU  bool // fuse a ReLU after the affine transform
}

// PoolParams describe a 2-D max pooling.
type PoolParams struct {
	KH, KW           int
	StrideH, StrideW int
	PadH, PadW       int
}

// Workspace is backend-private state saved by a forward kernel for its
// backward kernel (for example max-pool argmax indices).
type Workspace any

// Caps are the properties of a backend that callers may choose by.
type Caps struct {
	// Tuned: the kernels are tuned library code (oneDNN), much faster than
	// plain Go. The reference backend's are written for clarity. Code that
	// has a host path of its own for a product (kNN and the linear probe
	// use gonum's float64 GEMM) uses the backend's float32 MatMul only when
	// Tuned is set.
	Tuned bool
}

// Backend executes kernels. Outputs are preallocated by the tape with the
// right number of elements; a backend writes them and may set their layout
// with SetLayout. Inputs may be in any layout this backend produced.
// Shapes are NCHW logical shapes whatever the layout.
//
// A backend must be safe to call from any goroutine (the oneDNN backend
// funnels its calls onto one OS thread), but calls are not concurrent.
type Backend interface {
	Name() string
	// Caps describes the backend, so that callers choose paths by
	// property, never by name.
	Caps() Caps

	// Conv2D: y[N,O,OH,OW] = conv(x[N,C,H,W], w[O,C,KH,KW]) + b[O]; b may be nil.
	Conv2D(y, x, w, b *Tensor, p ConvParams)
	// Conv2DBackwardData: dx = conv^T(dy, w).
	Conv2DBackwardData(dx, dy, w *Tensor, p ConvParams)
	// Conv2DBackwardWeights: dw (and db if non-nil) from x and dy; overwrites.
	Conv2DBackwardWeights(dw, db, x, dy *Tensor, p ConvParams)

	// BatchNorm over N (and H, W) per channel of x [N,C] or [N,C,H,W].
	// In training mode it writes the batch mean and biased variance into
	// mean and variance; otherwise it reads them. The returned workspace is
	// passed to BatchNormBackward.
	BatchNorm(y, x, gamma, beta, mean, variance *Tensor, p BNParams) Workspace
	// BatchNormBackward (training mode) writes dx, dgamma, dbeta. y is the
	// forward output (needed when p.ReLU is set).
	BatchNormBackward(dx, dgamma, dbeta, dy, x, y, gamma, mean, variance *Tensor, ws Workspace, p BNParams)

	ReLU(y, x *Tensor)
	// ReLUBackward: dx = dy where y > 0, else 0.
	ReLUBackward(dx, dy, y *Tensor)
	// Add: y = a + b (same shape), then ReLU if relu. y may be a.
	Add(y, a, b *Tensor, relu bool)

	MaxPool2D(y, x *Tensor, p PoolParams) Workspace
	MaxPool2DBackward(dx, dy *Tensor, ws Workspace, p PoolParams)

	// GlobalAvgPool: y[N,C] (Plain) = mean over H,W of x[N,C,H,W].
	GlobalAvgPool(y, x *Tensor)
	GlobalAvgPoolBackward(dx, dy *Tensor)

	// MatMul on Plain 2-D tensors: c = alpha*op(a)*op(b) + beta*c.
	MatMul(c, a, b *Tensor, transA, transB bool, alpha, beta float32)

	// ToPlain copies src (any layout) into dst as Plain.
	ToPlain(dst, src *Tensor)
}
