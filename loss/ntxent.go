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
// S = U·Uᵀ/τ is one GEMM on the tape's backend. Since |s_ik| ≤ 1/τ, the
// exponentials are taken with the fixed shift c = 1/τ, E_ik = exp(s_ik - c)
// ∈ [e^{-2/τ}, 1]: no overflow, and no float32 underflow for τ ≥ 0.025.
// E is symmetric, so each exponential is computed once for both (i,k) and
// (k,i), in cache-sized tiles. Per row, with the negatives' sum
// n_i = Σ_{k≠i,p} E_ik and Z_i = E_ip + n_i (both in float64), the loss is
// l_i = log1p(n_i / E_ip), which keeps full relative precision when it is
// tiny. For τ < 0.025 each row is instead reduced on its own with its
// maximum subtracted (the classic log-sum-exp), the same value up to
// rounding.
//
// # Backward
//
// With P_ik = E_ik / Z_i (P_ii = 0) and the one-hot target Y,
// ∂L/∂s_ik = G_ik = (P_ik - Y_ik) / 2N, and since S = U·Uᵀ/τ,
// ∂L/∂U = (G + Gᵀ)·U / τ. A = 2N(G + Gᵀ) is written in place of E in one
// row-parallel pass:
//
//	A_ik = E_ik·(1/Z_i + 1/Z_k)          for a negative pair,
//	A_ip = -(n_i/Z_i + n_p/Z_p)           for a positive pair (P_ip - 1 = -n_i/Z_i, no cancellation),
//	A_ii = 0,
//
// and one more GEMM gives ∂L/∂U. Through the normalisation, for a row with
// r_k = ||z_k|| > eps, ∂L/∂z_k = (∂L/∂u_k - u_k (u_k·∂L/∂u_k)) / r_k (the
// component along u_k is removed); for r_k ≤ eps the denominator is the
// constant eps and ∂L/∂z_k = ∂L/∂u_k / eps, matching PyTorch's autograd.
//
// Memory: one 2N×2N float32 buffer (S, then E, then A), plus U, dZ and a few
// 2N vectors, all taken from the tape's pool.
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
		s:     tp.Alloc(m, m),
		norms: tp.Alloc(m),
		invZ:  tp.Alloc(m),
		negP:  tp.Alloc(m),
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

// minSharedShiftTau is the smallest τ for the shared-shift path: there
// E ≥ e^{-2/τ} = e^{-80}, still a normal float32. A variable so tests can
// run both paths on the same inputs.
var minSharedShiftTau float32 = 0.025

// matMul is Backend.MatMul's signature.
type matMul func(c, a, b *engine.Tensor, transA, transB bool, alpha, beta float32)

// kernel holds the state one NT-Xent evaluation keeps for its backward pass.
type kernel struct {
	n, d   int
	tau    float32
	mm     matMul
	u      *engine.Tensor // [2N, D] normalised rows
	s      *engine.Tensor // [2N, 2N] S, then E (shared shift) or 2N·G (per row)
	norms  *engine.Tensor // [2N] ||z_k|| (before the eps floor)
	invZ   *engine.Tensor // [2N] 1/Z_i (shared shift)
	negP   *engine.Tensor // [2N] n_i/Z_i = 1 - P_ip (shared shift)
	perRow bool           // the per-row log-sum-exp path was taken
}

// forward normalises z into u, computes S and the loss, and leaves in s
// what backward needs.
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

	var tot rowStats
	k.perRow = k.tau < minSharedShiftTau
	if k.perRow {
		tot = k.forwardPerRow()
	} else {
		tot = k.forwardShared()
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

// expTile is the side of the square blocks E is computed in: a 64×64 float32
// block (16 KiB) and its mirror stay in L1/L2 while being transposed.
const expTile = 64

// forwardShared is the shared-shift path: E in place of S (symmetric, zero
// diagonal, zero at each row's positive), 1/Z_i and n_i/Z_i.
func (k *kernel) forwardShared() rowStats {
	m, n := 2*k.n, k.n
	s, invZ, negP := k.s.Data(), k.invZ.Data(), k.negP.Data()
	c := 1 / float64(k.tau)

	// The positives' logits, before E overwrites them (kept in invZ for now).
	var pos float64
	for i := range m {
		v := s[i*m+(i+n)%m]
		invZ[i] = v
		pos += float64(v)
	}

	// Pass 1: E for the upper triangle, mirrored. Worker w takes tile rows
	// w, w+nw, ... so that the triangle's work is spread evenly; it writes
	// only tiles (bi, bk≥bi) and their mirrors (bk, bi), which no other
	// worker touches.
	nt := (m + expTile - 1) / expTile
	nw := workers(m)
	sums := make([]float64, nw) // Σ_{i<k} s_ik, for the mean negative cosine
	parallelRows(nw, nw, func(w, _, _ int) {
		var sum float64
		for bi := w; bi < nt; bi += nw {
			i0, i1 := bi*expTile, min((bi+1)*expTile, m)
			for bk := bi; bk < nt; bk++ {
				k0, k1 := bk*expTile, min((bk+1)*expTile, m)
				for i := i0; i < i1; i++ {
					kk := k0
					if bk == bi {
						kk = i + 1
					}
					row := s[i*m : (i+1)*m]
					for ; kk < k1; kk++ {
						v := row[kk]
						sum += float64(v)
						e := float32(expNeg(float64(v) - c))
						row[kk] = e
						s[kk*m+i] = e
					}
				}
			}
			for i := i0; i < i1; i++ {
				s[i*m+i] = 0
			}
		}
		sums[w] = sum
	})
	var upper float64
	for _, v := range sums {
		upper += v
	}

	// Pass 2: per row, Z_i, n_i, the loss and the accuracy.
	parts := make([]rowStats, nw)
	parallelRows(m, nw, func(w, lo, hi int) {
		var ps rowStats
		for i := lo; i < hi; i++ {
			p := (i + n) % m
			row := s[i*m : (i+1)*m]
			ep := float64(row[p])
			row[p] = 0 // A_ip is filled in by backward
			var neg float64
			var maxNeg float32
			for _, e := range row {
				neg += float64(e)
				if e > maxNeg {
					maxNeg = e
				}
			}
			iz := 1 / (ep + neg)
			ps.loss += math.Log1p(neg / ep)
			if ep > float64(maxNeg) {
				ps.correct++
			}
			invZ[i] = float32(iz) // the positive logit read above is no longer needed
			negP[i] = float32(neg * iz)
		}
		parts[w] = ps
	})
	tot := rowStats{pos: pos, neg: 2*upper - pos}
	for _, p := range parts {
		tot.loss += p.loss
		tot.correct += p.correct
	}
	return tot
}

// forwardPerRow is the classic path for very small τ: each row reduced
// with its own maximum, leaving 2N·G = P - Y in s.
func (k *kernel) forwardPerRow() rowStats {
	m := 2 * k.n
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
		tot.add(p)
	}
	return tot
}

// softmaxRow turns row i of S (self at index i, positive at p) into row i of
// 2N·G = P - Y and returns l_i and the row's statistics.
func softmaxRow(row []float32, i, p int) rowStats {
	sp := float64(row[p])
	// Self and positive are excluded from the scans by parking them at -Inf
	// (exp gives 0), which keeps the loops branch-free.
	row[i], row[p] = float32(math.Inf(-1)), float32(math.Inf(-1))
	maxNeg := float32(math.Inf(-1))
	for _, v := range row {
		if v > maxNeg {
			maxNeg = v
		}
	}
	mx := max(sp, float64(maxNeg))
	var e, negSum float64 // Σ_neg exp(s_ik - mx), Σ_neg s_ik
	for k, v := range row {
		x := expNeg(float64(v) - mx)
		row[k] = float32(x) // unnormalised for now
		e += x
		if k != i && k != p {
			negSum += float64(v)
		}
	}
	pe := expNeg(sp - mx) // 1 when the positive is the maximum
	z := pe + e
	var l float64
	if sp >= float64(maxNeg) {
		l = math.Log1p(e)
	} else {
		l = (mx - sp) + math.Log(z)
	}
	inv := 1 / z
	for k, v := range row {
		row[k] = float32(float64(v) * inv)
	}
	row[i] = 0
	if p != i {
		row[p] = float32(-e * inv) // P_ip - 1 without cancellation
	}
	rs := rowStats{loss: l, pos: sp, neg: negSum}
	if sp > float64(maxNeg) {
		rs.correct = 1
	}
	return rs
}

// backward writes ∂L/∂z into dz given the upstream gradient g of the loss.
// It consumes what forward left in s.
func (k *kernel) backward(g float32, dz *engine.Tensor) {
	m, d, n := 2*k.n, k.d, k.n
	s := k.s.Data()
	if k.perRow {
		symmetrize(s, m)
	} else {
		invZ, negP := k.invZ.Data(), k.negP.Data()
		parallelRows(m, workers(m), func(_, lo, hi int) {
			for i := lo; i < hi; i++ {
				row := s[i*m : (i+1)*m]
				zi := invZ[i]
				for j, e := range row {
					row[j] = e * (zi + invZ[j])
				}
				p := (i + n) % m
				row[p] = -(negP[i] + negP[p])
			}
		})
	}
	// dU = A·U·g/(2N·τ); A is symmetric.
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
