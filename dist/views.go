package dist

import (
	"encoding/binary"
	"fmt"

	"github.com/simclr-go/simclr/engine"
)

// GatherViews all-gathers the projections z [2b, D] of every rank into the
// global batch [2bN, D] that NT-Xent expects, as a recorded op.
//
// Each rank's z holds view 1 of its b images, then view 2 of the same
// images (the loader's layout). NT-Xent pairs row i with row (i+bN) mod 2bN,
// so the gathered rows are reordered into [view 1 of all bN images in rank
// order; view 2 of the same], the layout of a single process that loaded
// the whole global batch. The backward keeps this rank's rows of the
// gradient (reordered back): every rank computes the whole global loss on
// the gathered z, so the gradient of its own rows is exact, including the
// terms in which its views are negatives of other ranks' anchors; the
// parameter gradients are then summed over the ranks.
func GatherViews(tp *engine.Tape, c Comm, z *engine.Tensor) *engine.Tensor {
	sh := z.Shape()
	if len(sh) != 2 || sh[0]%2 != 0 {
		panic(fmt.Sprintf("dist: GatherViews: z %v is not [2b, D]", sh))
	}
	n := c.Size()
	if n == 1 {
		return z
	}
	z = tp.Plain(z)
	m, d := sh[0], sh[1]
	b := m / 2
	all := tp.Alloc(n * m * d) // rank-major: rank r's [view 1; view 2]
	c.AllgatherF32(z.Data(), all.Data())
	out := tp.Alloc(n*m, d)
	// globalRow maps rank r's local row i to its row in the global layout.
	globalRow := func(r, i int) int {
		v, k := i/b, i%b
		return v*n*b + r*b + k
	}
	od, ad := out.Data(), all.Data()
	for r := range n {
		for i := range m {
			g := globalRow(r, i)
			copy(od[g*d:(g+1)*d], ad[(r*m+i)*d:(r*m+i+1)*d])
		}
	}
	me := c.Rank()
	tp.Custom(out, []*engine.Tensor{z}, func(gout *engine.Tensor) []*engine.Tensor {
		dz := tp.Alloc(m, d)
		gd, dd := gout.Data(), dz.Data()
		for i := range m {
			g := globalRow(me, i)
			copy(dd[i*d:(i+1)*d], gd[g*d:(g+1)*d])
		}
		return []*engine.Tensor{dz}
	})
	return out
}

// GatherLabels all-gathers the labels of every rank's images into the
// global batch's, in rank order (the order of GatherViews' rows within
// each view), for a loss that uses them (SupCon).
func GatherLabels(c Comm, labels []int) []int {
	if c.Size() == 1 {
		return labels
	}
	b := make([]byte, 0, 8*len(labels))
	for _, l := range labels {
		b = binary.LittleEndian.AppendUint64(b, uint64(int64(l)))
	}
	var out []int
	for _, rb := range AllgatherVar(c, b) {
		for i := 0; i+8 <= len(rb); i += 8 {
			out = append(out, int(int64(binary.LittleEndian.Uint64(rb[i:]))))
		}
	}
	return out
}
