//go:build cgo && !purego

package dnnl

import "fmt"

// pkey identifies a plan: op, variant, layouts, flags and dimensions. It is
// a comparable value, so the plan cache is one map lookup per kernel call.
//
// flags, by op:
//   - opConv: bit 0 bias; bits 1-2 the algorithm (convDirect, convWinograd,
//     convOwnWino). With the algorithm bits clear it is the key of the
//     choice (tune.go), not of a plan.
//   - opBN: bit 0 fused ReLU; bit 1 global statistics (backward of an
//     inference forward); bits 2-3 the thread mode (4: pool, 8: one
//     thread). With the mode bits clear it is the key of the choice.
//   - opElt: the plan's rank (1 or 4), plus 16 for a fused ReLU.
type pkey struct {
	op, kind uint8
	l1, l2   int8
	flags    uint8
	eps      float32
	d        [13]int64
}

const (
	opConv uint8 = iota + 1
	opBN
	opElt
	opPool
)

// convKey is the key of the choice for a convolution (kind 0 forward, 1
// backward data, 2 backward weights); withAlgo makes it a plan's key.
func convKey(kind int, dm *[13]int64, xl, yl int, bias bool) pkey {
	k := pkey{op: opConv, kind: uint8(kind), l1: int8(xl), l2: int8(yl), d: *dm}
	if bias {
		k.flags = 1
	}
	return k
}

func (k pkey) withAlgo(a uint8) pkey {
	k.flags |= a << 1
	return k
}

// bnKey is the key of the thread-mode choice for a batch norm (kinds as in
// newBNPlan); withMode makes it a plan's key.
func bnKey(kind int, dims [4]int64, l1, l2 int, eps float32, relu, global bool) pkey {
	k := pkey{op: opBN, kind: uint8(kind), l1: int8(l1), l2: int8(l2), eps: eps}
	copy(k.d[:], dims[:])
	if relu {
		k.flags |= 1
	}
	if global {
		k.flags |= 2
	}
	return k
}

func (k pkey) withMode(mode uint8) pkey {
	k.flags |= 4 << mode
	return k
}

func eltKey(kind int, dims [4]int64, nd, l1, l2 int, relu bool) pkey {
	k := pkey{op: opElt, kind: uint8(kind), l1: int8(l1), l2: int8(l2), flags: uint8(nd)}
	if relu {
		k.flags |= 16
	}
	copy(k.d[:], dims[:])
	return k
}

func poolKey(kind int, dm [12]int64, l1, l2 int) pkey {
	k := pkey{op: opPool, kind: uint8(kind), l1: int8(l1), l2: int8(l2)}
	copy(k.d[:], dm[:])
	return k
}

// layName is oneDNN's name of a layout code.
func layName(l int8) string {
	switch l {
	case 8:
		return "nChw8c"
	case 16:
		return "nChw16c"
	}
	return "plain"
}

// describe renders the key of a choice (algorithm or thread bits clear)
// as the text that names it in a saved engine.Tuning: the shape fields in
// ONEDNN_VERBOSE's order, so that a tuning file can be read next to a
// kernel profile.
func (k pkey) describe() string {
	d := k.d
	switch k.op {
	case opConv:
		dir := [...]string{"fwd", "bwd_data", "bwd_weights"}[k.kind]
		bias := ""
		if k.flags&1 != 0 {
			bias = " bias"
		}
		return fmt.Sprintf("conv %s mb%d_ic%doc%d_ih%doh%dkh%dsh%dph%d_iw%dow%dkw%dsw%dpw%d x:%s y:%s%s",
			dir, d[0], d[1], d[4], d[2], d[7], d[5], d[9], d[11], d[3], d[8], d[6], d[10], d[12],
			layName(k.l1), layName(k.l2), bias)
	case opBN:
		dir := [...]string{"fwd_training", "fwd_inference", "bwd", "bwd_mask_from_y"}[k.kind]
		shape := fmt.Sprintf("mb%d_ic%d", d[0], d[1])
		if d[2] != 0 {
			shape += fmt.Sprintf("_ih%d_iw%d", d[2], d[3])
		}
		s := fmt.Sprintf("batchnorm %s %s x:%s dy:%s eps%g", dir, shape, layName(k.l1), layName(k.l2), k.eps)
		if k.flags&1 != 0 {
			s += " relu"
		}
		if k.flags&2 != 0 {
			s += " global"
		}
		return s
	}
	return fmt.Sprintf("%+v", k)
}
