package loss

import (
	"fmt"

	"github.com/simclr-go/simclr/engine"
)

// SupCon returns the supervised contrastive loss L_out of Khosla et al.
// 2020 ("Supervised Contrastive Learning", eq. 2) of z [2N, D] as a
// one-element tensor recorded on tp, with its statistics. Rows r and r+N of
// z are the two views of image r, whose class is labels[r]; every other
// view of the same class is a positive of a view, so that
//
//	l_i = -(1/|P(i)|) Σ_{p∈P(i)} log( exp(s_ip) / Σ_{k≠i} exp(s_ik) ),   L = (1/2N) Σ_i l_i,
//
// with P(i) the views other than i whose image has i's label. An image whose
// class has no other image in the batch has one positive, its other view,
// as in NT-Xent; with all labels distinct SupCon is NT-Xent. Labels are
// compared for equality only. It is Contrastive with the groups labels[i mod
// N]; see there for the numerics. The reference code's extra factor
// τ/base_τ is left out (it is 1 at its defaults, τ = base_τ = 0.07).
//
// SupCon panics (engine style) when z is not [2N, D] with N = len(labels)
// ≥ 1 or tau is not a positive finite number.
func SupCon(tp *engine.Tape, z *engine.Tensor, labels []int, tau float32) (*engine.Tensor, Stats) {
	n := len(labels)
	checkViews("SupCon", z, n, fmt.Sprintf("%d labels", n), tau)
	id := make([]int, 2*n)
	copy(id, labels)
	copy(id[n:], labels)
	g, err := groupsOf(id)
	if err != nil {
		panic("loss: SupCon: " + err.Error()) // not reached: each label has two views
	}
	return contrastive(tp, z, g, tau)
}
