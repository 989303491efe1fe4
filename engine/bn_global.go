package engine

import "math"

// BNSync combines batch-norm statistics over the processes that share one
// global batch (data-parallel training; package dist's Comm implements it).
// Every process must run the same sequence of training-mode batch norms.
type BNSync interface {
	Size() int
	// AllgatherF64 writes every process's send into recv, in rank order.
	AllgatherF64(send, recv []float64)
	// AllreduceF64 replaces buf by its element-wise sum over the processes.
	AllreduceF64(buf []float64)
}

// SetBNSync makes every training-mode BatchNorm on this tape normalise with
// the mean and variance of the global batch, the union of every process's
// batch (SimCLR's "global BN"), and differentiate accordingly. nil (or a
// sync of size 1) restores per-process statistics.
func (tp *Tape) SetBNSync(s BNSync) {
	if s != nil && s.Size() <= 1 {
		s = nil
	}
	tp.bnSync = s
}

// batchNormGlobal is BatchNorm in training mode over the global batch. It
// runs on the backend's own kernels, whatever the layout:
//
// Forward: a training-mode pass gives this process's mean and biased
// variance (into y, overwritten next); every process's (count, mean,
// variance) is all-gathered and combined in rank order in float64
// (Chan et al.: M = Σm_r, μ = Σm_rμ_r/M, σ² = Σm_r(σ²_r + (μ_r-μ)²)/M),
// so every process gets bit-identical statistics; an inference-mode pass
// with (μ, σ²) then writes y (with the fused ReLU). The running statistics
// are updated with the global μ and the unbiased global σ²·M/(M-1), as one
// process holding the whole batch would.
//
// Backward: with x̂ = (x-μ)/σ and dy masked by the ReLU, the exact
// gradient is dx = γ/σ·(dy - Σdy/M - x̂·Σ(dy·x̂)/M) with sums over the
// global batch. The backend's training-mode backward, given (μ, σ²),
// returns this process's sums (its dβ_r, dγ_r) and
// dx_r = γ/σ·(dy - dβ_r/m - x̂·dγ_r/m). The two sums are all-reduced and the
// difference, a per-channel affine function of x̂, is added as one
// inference-mode batch norm with scale γ/σ·(dγ_r/m - dγ/M) and shift
// γ/σ·(dβ_r/m - dβ/M). gamma and beta receive this process's sums only:
// the parameter gradients are summed over the processes afterwards.
func (tp *Tape) batchNormGlobal(x, gamma, beta *Tensor, st *BNStats, p BNParams) *Tensor {
	const op = "BatchNorm"
	C := x.shape[1]
	m := len(x.data) / C
	relu := p.ReLU
	local := BNParams{Eps: p.Eps, Train: true}
	lmean, lvar := tp.get(C), tp.get(C)
	y := tp.get(x.shape...)
	tp.b.BatchNorm(y, x, gamma, beta, lmean, lvar, local)

	n := tp.bnSync.Size()
	send := make([]float64, 1+2*C)
	send[0] = float64(m)
	for c := range C {
		send[1+c] = float64(lmean.data[c])
		send[1+C+c] = float64(lvar.data[c])
	}
	tp.release(lmean)
	tp.release(lvar)
	all := make([]float64, n*len(send))
	tp.bnSync.AllgatherF64(send, all)
	var M float64
	for r := range n {
		M += all[r*len(send)]
	}
	if M < 2 {
		panicf(op, "x %v: training needs more than one value per channel over the global batch", x.shape)
	}
	mean, variance := tp.get(C), tp.get(C)
	for c := range C {
		var mu float64
		for r := range n {
			row := all[r*len(send):]
			mu += row[0] * row[1+c]
		}
		mu /= M
		var v float64
		for r := range n {
			row := all[r*len(send):]
			d := row[1+c] - mu
			v += row[0] * (row[1+C+c] + d*d)
		}
		mean.data[c], variance.data[c] = float32(mu), float32(v/M)
	}
	tp.b.BatchNorm(y, x, gamma, beta, mean, variance, BNParams{Eps: p.Eps, ReLU: relu})
	l := readsIn
	if !relu { // the backward reads y only for the ReLU's mask
		l |= outFree
	}
	if st != nil {
		mom := st.Momentum
		unbias := float32(M / (M - 1))
		rm, rv := st.Mean.Data(), st.Var.Data()
		for c := range C {
			rm[c] = (1-mom)*rm[c] + mom*mean.data[c]
			rv[c] = (1-mom)*rv[c] + mom*variance.data[c]*unbias
		}
	}
	if !tp.begin(y, l, x, gamma, beta) {
		return y
	}
	tp.record(y, func(g *Tensor) {
		dx := tp.get(x.shape...)
		dgamma, dbeta := tp.get(C), tp.get(C)
		tp.b.BatchNormBackward(dx, dgamma, dbeta, g, x, y, gamma, mean, variance, nil, BNParams{Eps: p.Eps, Train: true, ReLU: relu})
		sums := make([]float64, 2*C)
		for c := range C {
			sums[c], sums[C+c] = float64(dgamma.data[c]), float64(dbeta.data[c])
		}
		tp.bnSync.AllreduceF64(sums)
		scale, shift := tp.get(C), tp.get(C)
		for c := range C {
			k := float64(gamma.data[c]) / math.Sqrt(float64(variance.data[c])+float64(p.Eps))
			scale.data[c] = float32(k * (float64(dgamma.data[c])/float64(m) - sums[c]/M))
			shift.data[c] = float32(k * (float64(dbeta.data[c])/float64(m) - sums[C+c]/M))
		}
		corr := tp.get(x.shape...)
		tp.b.BatchNorm(corr, x, scale, shift, mean, variance, BNParams{Eps: p.Eps})
		tp.b.Add(dx, dx, corr, false)
		tp.release(corr)
		tp.release(scale)
		tp.release(shift)
		tp.addGrad(gamma, dgamma, true)
		tp.addGrad(beta, dbeta, true)
		tp.addGrad(x, dx, true)
	})
	return y
}
