package engine

// This file is the op contract that model code is written against.
// CONTRACT STUBS: bodies are filled in by the engine implementation.

// node records how a tensor was produced, for the backward pass.
type node struct {
	inputs   []*Tensor
	backward func(grad *Tensor) // accumulates into the inputs' grads
}

// Tape records ops for reverse-mode autodiff and owns the pool of
// intermediate buffers. A Tape is not safe for concurrent use.
type Tape struct {
	b      Backend
	noGrad bool
}

// NewTape returns a tape that runs its kernels on b.
func NewTape(b Backend) *Tape { return &Tape{b: b} }

// Backend returns the tape's backend.
func (tp *Tape) Backend() Backend { return tp.b }

// SetGrad turns recording on (default) or off (inference).
func (tp *Tape) SetGrad(on bool) { tp.noGrad = !on }

// Reset forgets the recorded graph and returns every tensor created by ops
// since the last Reset to the pool. Tensors from before are invalid after it.
func (tp *Tape) Reset() { panic("unimplemented") }

// Backward computes d(loss)/d(leaf) for every leaf with RequiresGrad that
// loss depends on, accumulating into leaf.Grad(). loss must have one element.
func (tp *Tape) Backward(loss *Tensor) { panic("unimplemented") }

// Conv2D: x [N,C,H,W], w [O,C,KH,KW], b [O] or nil.
func (tp *Tape) Conv2D(x, w, b *Tensor, p ConvParams) *Tensor { panic("unimplemented") }

// BatchNorm normalises x [N,C] or [N,C,H,W] per channel. In training mode it
// uses batch statistics and updates the running ones in st; otherwise it uses
// st's running statistics. relu fuses a ReLU.
func (tp *Tape) BatchNorm(x, gamma, beta *Tensor, st *BNStats, train, relu bool) *Tensor {
	panic("unimplemented")
}

// BNStats are the running statistics of a batch-norm layer (PyTorch
// semantics: running = (1-Momentum)*running + Momentum*batch, with the
// unbiased batch variance).
type BNStats struct {
	Mean, Var *Tensor // [C]
	Momentum  float32 // 0.1 in PyTorch
	Eps       float32 // 1e-5 in PyTorch
}

func (tp *Tape) ReLU(x *Tensor) *Tensor { panic("unimplemented") }

// Add returns a+b (same shapes); AddReLU returns relu(a+b).
func (tp *Tape) Add(a, b *Tensor) *Tensor     { panic("unimplemented") }
func (tp *Tape) AddReLU(a, b *Tensor) *Tensor { panic("unimplemented") }

// Mul is the elementwise product (same shapes); Scale multiplies by s.
func (tp *Tape) Mul(a, b *Tensor) *Tensor           { panic("unimplemented") }
func (tp *Tape) Scale(x *Tensor, s float32) *Tensor { panic("unimplemented") }

// GlobalAvgPool: [N,C,H,W] -> [N,C].
func (tp *Tape) GlobalAvgPool(x *Tensor) *Tensor { panic("unimplemented") }

// MaxPool2D, e.g. PoolParams{3,3,2,2,1,1} for the ImageNet stem.
func (tp *Tape) MaxPool2D(x *Tensor, p PoolParams) *Tensor { panic("unimplemented") }

// Linear: x [N,in], w [out,in] (PyTorch's convention), b [out] or nil.
func (tp *Tape) Linear(x, w, b *Tensor) *Tensor { panic("unimplemented") }

// MatMul: op(a) * op(b) for 2-D a, b.
func (tp *Tape) MatMul(a, b *Tensor, transA, transB bool) *Tensor { panic("unimplemented") }

// Reshape returns x with a new shape of the same size (Plain view).
func (tp *Tape) Reshape(x *Tensor, shape ...int) *Tensor { panic("unimplemented") }

// Plain returns x in Plain layout (x itself if already Plain).
func (tp *Tape) Plain(x *Tensor) *Tensor { panic("unimplemented") }

// Concat joins tensors along axis 0; Split cuts x along axis 0 into parts of
// the given sizes.
func (tp *Tape) Concat(xs ...*Tensor) *Tensor            { panic("unimplemented") }
func (tp *Tape) Split(x *Tensor, sizes ...int) []*Tensor { panic("unimplemented") }

// L2Normalize divides each row of x [N,D] by max(||row||, eps).
func (tp *Tape) L2Normalize(x *Tensor, eps float32) *Tensor { panic("unimplemented") }

// LogSoftmax over the last axis of x [N,D].
func (tp *Tape) LogSoftmax(x *Tensor) *Tensor { panic("unimplemented") }

// CrossEntropy is the mean over rows of -log softmax(logits)[label].
func (tp *Tape) CrossEntropy(logits *Tensor, labels []int) *Tensor { panic("unimplemented") }

// Mean and Sum reduce all elements to a one-element tensor.
func (tp *Tape) Mean(x *Tensor) *Tensor { panic("unimplemented") }
func (tp *Tape) Sum(x *Tensor) *Tensor  { panic("unimplemented") }

// Custom records a hand-written op: out was computed from inputs by the
// caller (allocate it with tp.Alloc), and backward, given d(loss)/d(out),
// returns d(loss)/d(input) for each input (nil where none).
func (tp *Tape) Custom(out *Tensor, inputs []*Tensor, backward func(gradOut *Tensor) []*Tensor) {
	panic("unimplemented")
}

// Alloc returns a zeroed Plain tensor from the tape's pool (freed by Reset).
func (tp *Tape) Alloc(shape ...int) *Tensor { panic("unimplemented") }
