package engine

import "fmt"

// New returns a zeroed Plain leaf tensor.
func New(shape ...int) *Tensor {
	n := checkShape("New", shape)
	return &Tensor{shape: append([]int(nil), shape...), data: make([]float32, n)}
}

// FromData wraps data (not copied) as a Plain leaf tensor of the given shape.
func FromData(data []float32, shape ...int) *Tensor {
	n := checkShape("FromData", shape)
	if len(data) != n {
		panic(fmt.Sprintf("engine: FromData: %d values for shape %v (want %d)", len(data), shape, n))
	}
	return &Tensor{shape: append([]int(nil), shape...), data: data}
}

func checkShape(op string, shape []int) int {
	n := 1
	for _, d := range shape {
		if d <= 0 {
			panic(fmt.Sprintf("engine: %s: shape %v has a non-positive dimension", op, shape))
		}
		n *= d
	}
	return n
}

// Shape returns the logical shape (NCHW for 4-D). Do not modify it.
func (t *Tensor) Shape() []int { return t.shape }

// Dim returns dimension i of the shape.
func (t *Tensor) Dim(i int) int { return t.shape[i] }

// Len is the number of elements.
func (t *Tensor) Len() int { return len(t.data) }

// Layout returns the memory order of the data.
func (t *Tensor) Layout() Layout { return t.layout }

// SetLayout is for backends: it declares the order they wrote the data in.
func (t *Tensor) SetLayout(l Layout) { t.layout = l }

// Data returns the elements in Plain order. It panics for blocked tensors.
func (t *Tensor) Data() []float32 {
	if t.layout != Plain {
		panic(fmt.Sprintf("engine: Data: tensor %v is in a blocked layout; use Tape.Plain", t.shape))
	}
	return t.data
}

// Raw returns the storage whatever its layout; for backends.
func (t *Tensor) Raw() []float32 { return t.data }

// Item returns the single element of a one-element tensor.
func (t *Tensor) Item() float32 {
	if len(t.data) != 1 {
		panic(fmt.Sprintf("engine: Item: tensor %v has %d elements", t.shape, len(t.data)))
	}
	return t.data[0]
}

// RequiresGrad reports whether Backward computes a gradient for this leaf.
func (t *Tensor) RequiresGrad() bool { return t.requiresGrad }

// SetRequiresGrad marks a leaf as trainable.
func (t *Tensor) SetRequiresGrad(on bool) { t.requiresGrad = on }

// Grad returns the accumulated gradient, or nil before the first Backward.
func (t *Tensor) Grad() *Tensor { return t.grad }

// ZeroGrad sets the accumulated gradient to zero (keeping its buffer).
func (t *Tensor) ZeroGrad() {
	if t.grad != nil {
		clear(t.grad.data)
	}
}

func (t *Tensor) String() string { return fmt.Sprintf("Tensor%v", t.shape) }
