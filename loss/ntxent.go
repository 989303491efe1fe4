// Package loss holds SimCLR's training objective, the NT-Xent contrastive
// loss (Chen et al. 2020, eq. 1), as one fused autodiff op.
package loss

import (
	"fmt"
	"math"

	"github.com/simclr-go/simclr/engine"
)

// NormEps is the floor of a row's L2 norm in the normalisation, as in
// torch.nn.functional.normalize (u = z / max(||z||, eps)).
const NormEps = 1e-12

// Stats describe one NT-Xent evaluation. They are computed in the forward
// pass at no extra matrix cost.
type Stats struct {
	// Loss is the NT-Xent value (the mean over the 2N anchors).
	Loss float64
	// Accuracy is the fraction of the 2N anchors whose positive is strictly
	// more similar than every one of its 2N-2 negatives. Strict, so that a
	// collapsed encoder (all similarities equal) scores 0, not 1.
	Accuracy float64
	// PosSim is the mean cosine similarity of the 2N (anchor, positive)
	// pairs; NegSim the mean cosine over all 2N(2N-2) (anchor, negative) pairs.
	PosSim, NegSim float64
}

// NTXent returns the NT-Xent loss of z [2N, D] as a one-element tensor
// recorded on tp, with its statistics. Rows 0..N-1 of z are the first view of
// N images and rows N..2N-1 the second view of the same images, so the
// positive of row i is row (i+N) mod 2N. z is the raw projection-head output:
// NTXent L2-normalises the rows itself. tau is the temperature.
//
// # Definition
//
// With u_k = z_k / max(||z_k||, eps) and s_ik = u_i·u_k / τ, anchor i has the
// 2N-1 candidates k ≠ i (its positive p(i) and 2N-2 negatives) and
//
//	l_i = -s_{i,p(i)} + log Σ_{k≠i} exp(s_ik),   L = (1/2N) Σ_i l_i.
//
// # Forward
//
// S = U·Uᵀ/τ is one GEMM on the tape's backend. Each row is then reduced in
// float64 with its maximum m_i over k ≠ i subtracted (log-sum-exp), so no
// exponent exceeds 0 whatever τ. l_i is evaluated as
// (m_i - s_ip) + log(e^{s_ip-m_i} + Σ_neg e^{s_ik-m_i}), which is log1p of the
// negatives' sum when the positive is the maximum: this keeps full relative
// precision when the loss is tiny (well-separated positives, small τ).
//
// # Backward
//
// With P_ik = softmax_{k≠i}(s_ik) (P_ii = 0) and the one-hot target Y,
//
//	∂L/∂s_ik = G_ik = (P_ik - Y_ik) / 2N.
//
// The positive's entry P_ip - 1 is stored as -Σ_neg P_ik, again to avoid
// cancellation. The forward pass leaves 2N·G in the S buffer. Since
// S = U·Uᵀ/τ, ∂L/∂U = (G + Gᵀ)·U / τ: G is symmetrised in place and one more
// GEMM gives ∂L/∂U. Through the normalisation, for a row with
// r_k = ||z_k|| > eps, ∂L/∂z_k = (∂L/∂u_k - u_k (u_k·∂L/∂u_k)) / r_k (the
// component along u_k is removed); for r_k ≤ eps the denominator is the
// constant eps and ∂L/∂z_k = ∂L/∂u_k / eps, matching PyTorch's autograd.
//
// Memory: one 2N×2N float32 buffer (S, then G), plus U, dZ and the norms,
// all taken from the tape's pool.
//
// NTXent panics (engine style) when z is not [2n, D] with n ≥ 1 or tau is not
// a positive finite number.
func NTXent(tp *engine.Tape, z *engine.Tensor, n int, tau float32) (*engine.Tensor, Stats) {
	checkArgs(z, n, tau)
	z = tp.Plain(z) // z itself unless a backend left it blocked
	m, d := 2*n, z.Dim(1)
	k := &kernel{
		n: n, d: d, tau: tau,
		mm:    tp.Backend().MatMul,
		u:     tp.Alloc(m, d),
		norms: tp.Alloc(m),
		s:     tp.Alloc(m, m),
	}
	st := k.forward(z.Data())
	out := tp.Alloc(1)
	out.Data()[0] = float32(st.Loss)
	tp.Custom(out, []*engine.Tensor{z}, func(gradOut *engine.Tensor) []*engine.Tensor {
		dz := tp.Alloc(m, d)
		k.backward(gradOut.Data()[0], dz)
		return []*engine.Tensor{dz}
	})
	return out, st
}

func checkArgs(z *engine.Tensor, n int, tau float32) {
	sh := z.Shape()
	if len(sh) != 2 {
		panic(fmt.Sprintf("loss: NTXent: z %v is not 2-D [2N, D]", sh))
	}
	if n < 1 || sh[0] != 2*n {
		panic(fmt.Sprintf("loss: NTXent: z %v does not have 2N = %d rows (n = %d)", sh, 2*n, n))
	}
	if !(tau > 0) || math.IsInf(float64(tau), 0) {
		panic(fmt.Sprintf("loss: NTXent: temperature %v is not a positive finite number", tau))
	}
}

// matMul is Backend.MatMul's signature.
type matMul func(c, a, b *engine.Tensor, transA, transB bool, alpha, beta float32)

// kernel holds the state one NT-Xent evaluation keeps for its backward pass.
type kernel struct {
	n, d  int
	tau   float32
	mm    matMul
	u     *engine.Tensor // [2N, D] normalised rows
	norms *engine.Tensor // [2N] ||z_k|| (before the eps floor)
	s     *engine.Tensor // [2N, 2N] S after MatMul, 2N·G after forward
}

// forward normalises z into u, computes S and the loss, and leaves 2N·G in s.
func (k *kernel) forward(z []float32) Stats {
	m, d := 2*k.n, k.d
	u, r := k.u.Data(), k.norms.Data()
	for i := range m {
		row := z[i*d : (i+1)*d]
		var ss float64
		for _, v := range row {
			ss += float64(v) * float64(v)
		}
		nrm := math.Sqrt(ss)
		r[i] = float32(nrm)
		inv := 1 / math.Max(nrm, NormEps)
		ur := u[i*d : (i+1)*d]
		for j, v := range row {
			ur[j] = float32(float64(v) * inv)
		}
	}
	k.mm(k.s, k.u, k.u, false, true, 1/k.tau, 0)

	s := k.s.Data()
	parts := make([]rowStats, workers(m))
	parallelRows(m, len(parts), func(w, lo, hi int) {
		var ps rowStats
		for i := lo; i < hi; i++ {
			ps.add(softmaxRow(s[i*m:(i+1)*m], i, (i+k.n)%m))
		}
		parts[w] = ps
	})
	var tot rowStats
	for _, p := range parts {
		tot.loss += p.loss
		tot.correct += p.correct
		tot.pos += p.pos
		tot.neg += p.neg
	}
	t := float64(k.tau)
	st := Stats{
		Loss:     tot.loss / float64(m),
		Accuracy: float64(tot.correct) / float64(m),
		PosSim:   tot.pos * t / float64(m),
	}
	if m > 2 {
		st.NegSim = tot.neg * t / float64(m*(m-2))
	}
	return st
}

type rowStats struct {
	loss     float64
	correct  int
	pos, neg float64 // sums of scaled similarities s = cos/τ
}

func (a *rowStats) add(b rowStats) {
	a.loss += b.loss
	a.correct += b.correct
	a.pos += b.pos
	a.neg += b.neg
}

// softmaxRow turns row i of S (self at index i, positive at p) into row i of
// 2N·G = P - Y and returns l_i and the row's statistics.
func softmaxRow(row []float32, i, p int) rowStats {
	sp := float64(row[p])
	maxNeg := math.Inf(-1)
	var negSum float64
	for k, v := range row {
		if k != i && k != p {
			maxNeg = math.Max(maxNeg, float64(v))
			negSum += float64(v)
		}
	}
	mx := math.Max(sp, maxNeg)
	var e float64 // Σ_neg exp(s_ik - mx)
	for k, v := range row {
		if k != i && k != p {
			x := math.Exp(float64(v) - mx)
			row[k] = float32(x) // unnormalised for now
			e += x
		}
	}
	pe := math.Exp(sp - mx) // 1 when the positive is the maximum
	z := pe + e
	var l float64
	if sp >= maxNeg {
		l = math.Log1p(e)
	} else {
		l = (mx - sp) + math.Log(z)
	}
	inv := 1 / z
	for k := range row {
		if k != i && k != p {
			row[k] = float32(float64(row[k]) * inv)
		}
	}
	row[i] = 0
	if p != i {
		row[p] = float32(-e * inv) // P_ip - 1 without cancellation
	}
	rs := rowStats{loss: l, pos: sp, neg: negSum}
	if sp > maxNeg {
		rs.correct = 1
	}
	return rs
}

// backward writes ∂L/∂z into dz given the upstream gradient g of the loss.
// It consumes the 2N·G left in s by forward.
func (k *kernel) backward(g float32, dz *engine.Tensor) {
	m, d := 2*k.n, k.d
	symmetrize(k.s.Data(), m)
	// dU = (G+Gᵀ)·U/τ, with G = (2N·G)/2N and the upstream factor g.
	k.mm(dz, k.s, k.u, false, false, g/(float32(m)*k.tau), 0)
	u, r, dd := k.u.Data(), k.norms.Data(), dz.Data()
	for i := range m {
		du := dd[i*d : (i+1)*d]
		nrm := float64(r[i])
		if nrm <= NormEps {
			for j := range du {
				du[j] = float32(float64(du[j]) / NormEps)
			}
			continue
		}
		ui := u[i*d : (i+1)*d]
		var dot float64
		for j, v := range du {
			dot += float64(v) * float64(ui[j])
		}
		inv := 1 / nrm
		for j, v := range du {
			du[j] = float32((float64(v) - float64(ui[j])*dot) * inv)
		}
	}
}

// symmetrize replaces the m×m matrix a by a + aᵀ, in cache-sized tiles.
func symmetrize(a []float32, m int) {
	const t = 64
	for bi := 0; bi < m; bi += t {
		ei := min(bi+t, m)
		for bj := bi; bj < m; bj += t {
			ej := min(bj+t, m)
			for i := bi; i < ei; i++ {
				j0 := bj
				if bj == bi {
					j0 = i
				}
				for j := j0; j < ej; j++ {
					v := a[i*m+j] + a[j*m+i]
					a[i*m+j] = v
					a[j*m+i] = v
				}
			}
		}
	}
}
