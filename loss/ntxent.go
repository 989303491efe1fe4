package loss

import (
	"fmt"

	"github.com/simclr-go/simclr/engine"
)

// NTXent returns SimCLR's NT-Xent loss of z [2N, D] (Chen et al. 2020,
// eq. 1) as a one-element tensor recorded on tp, with its statistics. Rows
// 0..N-1 of z are the first view of N images and rows N..2N-1 the second
// view of the same images, so the one positive of row i is row (i+N) mod 2N
// and the other 2N-2 rows are its negatives:
//
//	l_i = -s_{i,p(i)} + log Σ_{k≠i} exp(s_ik),   L = (1/2N) Σ_i l_i.
//
// It is Contrastive with the groups {i, i+N}; see there for the definition,
// the numerics and the backward pass.
//
// NTXent panics (engine style) when z is not [2n, D] with n ≥ 1 or tau is not
// a positive finite number.
func NTXent(tp *engine.Tape, z *engine.Tensor, n int, tau float32) (*engine.Tensor, Stats) {
	checkViews("NTXent", z, n, fmt.Sprintf("n = %d", n), tau)
	return contrastive(tp, z, pairGroups(n), tau)
}
