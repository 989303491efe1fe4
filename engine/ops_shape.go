package engine

import "slices"

// Ops that move data without arithmetic: views, layout changes, joining
// and cutting along the batch axis.

// Reshape returns x with a new shape of the same size (Plain view). One
// dimension may be -1, inferred from the others.
func (tp *Tape) Reshape(x *Tensor, shape ...int) *Tensor {
	const op = "Reshape"
	if x == nil {
		panicf(op, "x is nil")
	}
	n, infer := 1, -1
	for i, d := range shape {
		switch {
		case d == -1 && infer < 0:
			infer = i
		case d <= 0:
			panicf(op, "x %v to %v: bad dimension %d", x.shape, shape, d)
		default:
			n *= d
		}
	}
	ns := shape
	if infer >= 0 {
		if len(x.data)%n != 0 {
			panicf(op, "x %v to %v: size %d is not a multiple of %d", x.shape, shape, len(x.data), n)
		}
		ns = append(make([]int, 0, 8), shape...)
		ns[infer] = len(x.data) / n
		n *= ns[infer]
	}
	if n != len(x.data) {
		panicf(op, "x %v to %v: sizes differ (%d vs %d)", x.shape, shape, len(x.data), n)
	}
	if x.layout != Plain {
		x = tp.Plain(x)
	}
	y := tp.viewOf(x, ns)
	if tp.begin(y, readsIn, x) {
		tp.record(y, func(g *Tensor) {
			if g.layout != Plain {
				p := tp.get(g.shape...)
				tp.b.ToPlain(p, g)
				g = p
			}
			// g is ours to hand on: addGrad reshapes it to x's shape.
			tp.addGrad(x, g, true)
		})
	}
	return y
}

// Plain returns x in Plain layout (x itself if already Plain).
func (tp *Tape) Plain(x *Tensor) *Tensor {
	if x == nil {
		panicf("Plain", "x is nil")
	}
	if x.layout == Plain {
		return x
	}
	y := tp.get(x.shape...)
	tp.b.ToPlain(y, x)
	if tp.begin(y, readsIn, x) {
		tp.record(y, func(g *Tensor) { tp.addGrad(x, g, true) })
	}
	return y
}

// Concat joins tensors along axis 0; Split cuts x along axis 0 into parts of
// the given sizes. Axis 0 is outermost in every layout, so both keep their
// inputs' layout when the inputs agree.
func (tp *Tape) Concat(xs ...*Tensor) *Tensor {
	const op = "Concat"
	if len(xs) == 0 {
		panicf(op, "no inputs")
	}
	first := xs[0]
	if first == nil {
		panicf(op, "input 0 is nil")
	}
	n0, layout := 0, first.layout
	for i, x := range xs {
		if x == nil {
			panicf(op, "input %d is nil", i)
		}
		if len(x.shape) != len(first.shape) || !slices.Equal(x.shape[1:], first.shape[1:]) {
			panicf(op, "input 0 %v and input %d %v: shapes differ beyond axis 0", first.shape, i, x.shape)
		}
		n0 += x.shape[0]
		if x.layout != layout {
			layout = Plain
		}
	}
	shape := append(append(make([]int, 0, 8), n0), first.shape[1:]...)
	y := tp.get(shape...)
	y.layout = layout
	off := 0
	for _, x := range xs {
		src := x
		if x.layout != layout {
			src = tp.plainOf(x)
		}
		off += copy(y.data[off:], src.data)
		tp.releaseTmp(src, x)
	}
	if tp.begin(y, readsIn, xs...) {
		ins := append([]*Tensor(nil), xs...)
		tp.record(y, func(g *Tensor) {
			off := 0
			for _, x := range ins {
				n := len(x.data)
				if x.requiresGrad {
					d := tp.get(x.shape...)
					copy(d.data, g.data[off:off+n])
					d.layout = g.layout
					tp.addGrad(x, d, true)
				}
				off += n
			}
		})
	}
	return y
}

// Split cuts x along axis 0 into parts of the given sizes (which must sum
// to x's first dimension).
func (tp *Tape) Split(x *Tensor, sizes ...int) []*Tensor {
	const op = "Split"
	if x == nil {
		panicf(op, "x is nil")
	}
	if len(x.shape) == 0 {
		panicf(op, "x %v has rank 0", x.shape)
	}
	total := 0
	for _, s := range sizes {
		if s <= 0 {
			panicf(op, "x %v: sizes %v must be positive", x.shape, sizes)
		}
		total += s
	}
	if len(sizes) == 0 || total != x.shape[0] {
		panicf(op, "x %v: sizes %v do not sum to %d", x.shape, sizes, x.shape[0])
	}
	row := len(x.data) / x.shape[0]
	outs := make([]*Tensor, len(sizes))
	shape := append(make([]int, 0, 8), x.shape...)
	off := 0
	for i, s := range sizes {
		shape[0] = s
		y := tp.get(shape...)
		y.layout = x.layout
		copy(y.data, x.data[off:off+s*row])
		if tp.begin(y, readsIn, x) {
			o := off
			tp.record(y, func(g *Tensor) { tp.addGradPart(x, g, o) })
		}
		outs[i] = y
		off += s * row
	}
	return outs
}
