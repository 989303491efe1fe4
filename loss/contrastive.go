// Package loss holds the contrastive training objectives: SimCLR's NT-Xent
// (Chen et al. 2020, eq. 1) and the supervised contrastive loss SupCon
// (Khosla et al. 2020, L_out). Both are one fused autodiff op, Contrastive,
// over a positive relation given by groups of rows: NT-Xent's groups are the
// two views of an image, SupCon's the views of all images of a class.
package loss

import (
	"fmt"
	"math"
	"slices"
	"sync/atomic"

	"github.com/simclr-go/simclr/engine"
)

// NormEps is the floor of a row's L2 norm in the normalisation, as in
// torch.nn.functional.normalize (u = z / max(||z||, eps)).
const NormEps = 1e-12

// Stats describe one contrastive loss evaluation. They are computed in the
// forward pass at no extra matrix cost.
type Stats struct {
	// Loss is the loss value (the mean over the M anchors).
	Loss float64
	// Accuracy is the fraction of the anchors whose most similar positive
	// is strictly more similar than every one of their negatives. Strict,
	// so that a collapsed encoder (all similarities equal) scores 0, not 1.
	Accuracy float64
	// PosSim is the mean cosine similarity over the (anchor, positive)
	// pairs, NegSim the mean over the (anchor, negative) pairs (0 when
	// there are none).
	PosSim, NegSim float64
}

// Contrastive returns the contrastive loss of z [M, D] as a one-element
// tensor recorded on tp, with its statistics. group[i] is the group of row
// i: rows i ≠ k are positives of each other when group[i] == group[k], and
// every other row is a negative. Every group must have at least two rows, so
// that each anchor has a positive. z is the raw projection-head output:
// Contrastive L2-normalises the rows itself. tau is the temperature.
//
// # Definition
//
// With u_k = z_k / max(||z_k||, eps), s_ik = u_i·u_k / τ and P(i) the
// positives of anchor i, anchor i has the M-1 candidates k ≠ i and
//
//	l_i = -(1/|P(i)|) Σ_{p∈P(i)} s_ip + log Σ_{k≠i} exp(s_ik),   L = (1/M) Σ_i l_i,
//
// the mean over the positives of -log softmax_{k≠i}(s_i·) at the positive
// (SupCon's L_out). With one positive per anchor this is NT-Xent.
//
// # Forward
//
// S = U·Uᵀ/τ is one GEMM on the tape's backend. Since |s_ik| ≤ 1/τ, the
// exponentials are taken with the fixed shift c = 1/τ, E_ik = exp(s_ik - c)
// ∈ [e^{-2/τ}, 1]: no overflow, and no float32 underflow for τ ≥ 0.025.
// E is symmetric, so each exponential is computed once for both (i,k) and
// (k,i), in cache-sized tiles. Per row, with Z_i = Σ_{k≠i} E_ik in float64,
// an anchor with one positive p (NT-Xent's case) has l_i = log1p(n_i/E_ip)
// with the negatives' sum n_i = Z_i - E_ip summed on its own, which keeps
// full relative precision when l_i is tiny; an anchor with several has
// l_i = log Z_i + c - mean_p s_ip. For τ < 0.025 each row is instead
// reduced on its own with its maximum subtracted (the classic log-sum-exp),
// the same value up to rounding.
//
// # Backward
//
// With P_ik = E_ik / Z_i (P_ii = 0) and the target Y_ik = 1/|P(i)| for
// k ∈ P(i), 0 otherwise, ∂L/∂s_ik = G_ik = (P_ik - Y_ik) / M, and since
// S = U·Uᵀ/τ, ∂L/∂U = (G + Gᵀ)·U / τ. Positives are symmetric and share
// their group's size, so A = M(G + Gᵀ) is, written in place of E in one
// row-parallel pass,
//
//	A_ik = E_ik·(1/Z_i + 1/Z_k)               for a negative pair,
//	A_ip = -(n_i/Z_i + n_p/Z_p)                for the one positive (P_ip - 1 = -n_i/Z_i, no cancellation),
//	A_ip = E_ip·(1/Z_i + 1/Z_p) - 2/|P(i)|     for one of several positives,
//	A_ii = 0,
//
// and one more GEMM gives ∂L/∂U. Through the normalisation, for a row with
// r_k = ||z_k|| > eps, ∂L/∂z_k = (∂L/∂u_k - u_k (u_k·∂L/∂u_k)) / r_k (the
// component along u_k is removed); for r_k ≤ eps the denominator is the
// constant eps and ∂L/∂z_k = ∂L/∂u_k / eps, matching PyTorch's autograd.
//
// Memory: one M×M float32 buffer (S, then E, then A), plus U, dZ and a few
// M vectors, all taken from the tape's pool.
//
// Contrastive panics (engine style) when z is not [M, D], group does not
// have M entries or has a group of one row, or tau is not a positive finite
// number.
func Contrastive(tp *engine.Tape, z *engine.Tensor, group []int, tau float32) (*engine.Tensor, Stats) {
	sh := z.Shape()
	if len(sh) != 2 {
		panic(fmt.Sprintf("loss: Contrastive: z %v is not 2-D [M, D]", sh))
	}
	if len(group) != sh[0] {
		panic(fmt.Sprintf("loss: Contrastive: %d groups for the %d rows of z %v", len(group), sh[0], sh))
	}
	checkTau("Contrastive", tau)
	g, err := groupsOf(group)
	if err != nil {
		panic("loss: Contrastive: " + err.Error())
	}
	return contrastive(tp, z, g, tau)
}

// contrastive is Contrastive on checked arguments.
func contrastive(tp *engine.Tape, z *engine.Tensor, g *groups, tau float32) (*engine.Tensor, Stats) {
	z = tp.Plain(z) // z itself unless a backend left it blocked
	m, d := z.Dim(0), z.Dim(1)
	k := &kernel{
		m: m, d: d, tau: tau, pos: g,
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

// checkViews panics unless z is [2n, D] with n ≥ 1 (two views of n
// images; count says where n comes from) and tau is valid.
func checkViews(op string, z *engine.Tensor, n int, count string, tau float32) {
	sh := z.Shape()
	if len(sh) != 2 {
		panic(fmt.Sprintf("loss: %s: z %v is not 2-D [2N, D]", op, sh))
	}
	if n < 1 || sh[0] != 2*n {
		panic(fmt.Sprintf("loss: %s: z %v does not have 2N = %d rows (%s)", op, sh, 2*n, count))
	}
	checkTau(op, tau)
}

func checkTau(op string, tau float32) {
	if !(tau > 0) || math.IsInf(float64(tau), 0) {
		panic(fmt.Sprintf("loss: %s: temperature %v is not a positive finite number", op, tau))
	}
}

// groups is the positive relation of a batch: the rows of each group, in
// one flat list, so that a row's positives are its group's other rows
// (O(M) memory however large the groups are).
type groups struct {
	of    []int32 // row -> group
	start []int32 // group g's rows are rows[start[g]:start[g+1]]
	rows  []int32
	npos  int  // Σ_i |P(i)|, the number of (anchor, positive) pairs
	multi bool // some group has more than two rows
	pairs int  // n when this is pairGroups(n), else 0
}

// members returns the rows of row i's group, i included.
func (g *groups) members(i int) []int32 {
	gi := g.of[i]
	return g.rows[g.start[gi]:g.start[gi+1]]
}

// partner is the other row of row i's group when it has two rows.
func partner(mem []int32, i int) int {
	if int(mem[0]) == i {
		return int(mem[1])
	}
	return int(mem[0])
}

// lastPairs caches the last pairGroups result (read-only once built), so
// that training steps of one batch size share it.
var lastPairs atomic.Pointer[groups]

// pairGroups is NT-Xent's relation on 2n rows: rows i and i+n.
func pairGroups(n int) *groups {
	if g := lastPairs.Load(); g != nil && g.pairs == n {
		return g
	}
	m := 2 * n
	g := &groups{of: make([]int32, m), start: make([]int32, n+1), rows: make([]int32, m), npos: m, pairs: n}
	for i := range n {
		g.of[i], g.of[i+n] = int32(i), int32(i)
		g.start[i+1] = int32(2*i + 2)
		g.rows[2*i], g.rows[2*i+1] = int32(i), int32(i+n)
	}
	lastPairs.Store(g)
	return g
}

// groupsOf builds the relation from group ids (any ints; equal means same
// group), with groups numbered in order of first appearance.
func groupsOf(id []int) (*groups, error) {
	m := len(id)
	dense := make(map[int]int32, m)
	g := &groups{of: make([]int32, m), rows: make([]int32, m)}
	var size []int32
	for i, v := range id {
		gi, ok := dense[v]
		if !ok {
			gi = int32(len(size))
			dense[v] = gi
			size = append(size, 0)
		}
		g.of[i] = gi
		size[gi]++
	}
	g.start = make([]int32, len(size)+1)
	for gi, c := range size {
		if c < 2 {
			return nil, fmt.Errorf("group %d has only row %d: every row needs a positive", id[slices.Index(g.of, int32(gi))], slices.Index(g.of, int32(gi)))
		}
		g.start[gi+1] = g.start[gi] + c
		g.npos += int(c) * int(c-1)
		g.multi = g.multi || c > 2
	}
	next := append([]int32(nil), g.start[:len(size)]...)
	for i, gi := range g.of {
		g.rows[next[gi]] = int32(i)
		next[gi]++
	}
	return g, nil
}

// minSharedShiftTau is the smallest τ for the shared-shift path: there
// E ≥ e^{-2/τ} = e^{-80}, still a normal float32. A variable so tests can
// run both paths on the same inputs.
var minSharedShiftTau float32 = 0.025

// matMul is Backend.MatMul's signature.
type matMul func(c, a, b *engine.Tensor, transA, transB bool, alpha, beta float32)

// kernel holds the state one evaluation keeps for its backward pass.
type kernel struct {
	m, d    int
	tau     float32
	pos     *groups
	mm      matMul
	u       *engine.Tensor // [M, D] normalised rows
	s       *engine.Tensor // [M, M] S, then E (shared shift) or M·G (per row)
	norms   *engine.Tensor // [M] ||z_k|| (before the eps floor)
	invZ    *engine.Tensor // [M] 1/Z_i (shared shift)
	negP    *engine.Tensor // [M] n_i/Z_i = 1 - P_ip (shared shift, one-positive rows)
	posMean []float64      // [M] mean_p s_ip of the rows with several positives (shared shift)
	perRow  bool           // the per-row log-sum-exp path was taken
}

// forward normalises z into u, computes S and the loss, and leaves in s
// what backward needs.
func (k *kernel) forward(z []float32) Stats {
	m, d := k.m, k.d
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
	npos := k.pos.npos
	st := Stats{
		Loss:     tot.loss / float64(m),
		Accuracy: float64(tot.correct) / float64(m),
		PosSim:   tot.pos * t / float64(npos),
	}
	if nneg := m*(m-1) - npos; nneg > 0 {
		st.NegSim = tot.neg * t / float64(nneg)
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
// diagonal, zero at the positive of each one-positive row), 1/Z_i and
// n_i/Z_i.
func (k *kernel) forwardShared() rowStats {
	m := k.m
	s, invZ, negP := k.s.Data(), k.invZ.Data(), k.negP.Data()
	c := 1 / float64(k.tau)

	// The positives' logits, before E overwrites them.
	var pos float64
	if k.pos.multi && len(k.posMean) < m {
		k.posMean = make([]float64, m)
	}
	for i := range m {
		mem := k.pos.members(i)
		if len(mem) == 2 {
			pos += float64(s[i*m+partner(mem, i)])
			continue
		}
		var ps float64
		for _, p := range mem {
			if int(p) != i {
				ps += float64(s[i*m+int(p)])
			}
		}
		pos += ps
		k.posMean[i] = ps / float64(len(mem)-1)
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
		var saved []float32 // a several-positive row's E at its positives
		for i := lo; i < hi; i++ {
			row := s[i*m : (i+1)*m]
			mem := k.pos.members(i)
			if len(mem) > 2 {
				saved = k.sharedRowMulti(row, i, mem, c, &ps, saved)
				continue
			}
			p := partner(mem, i)
			ep := float64(row[p])
			row[p] = 0 // A_ip is filled in by backward
			neg, maxNeg := sumMax(row)
			iz := 1 / (ep + neg)
			ps.loss += math.Log1p(neg / ep)
			if ep > float64(maxNeg) {
				ps.correct++
			}
			invZ[i] = float32(iz)
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

// sumMax returns the float64 sum and the maximum of a row of E (≥ 0).
func sumMax(row []float32) (float64, float32) {
	var sum float64
	var mx float32
	for _, e := range row {
		sum += float64(e)
		if e > mx {
			mx = e
		}
	}
	return sum, mx
}

// parkPositives replaces row's entries at row i's positives (mem, its
// group, without i) by park, saving them in saved (scratch space, returned
// for reuse), and returns their float64 sum and maximum (park if none is
// larger).
func parkPositives(row []float32, i int, mem []int32, park float32, saved []float32) (float64, float32, []float32) {
	saved = saved[:0]
	var sum float64
	mx := park
	for _, p := range mem {
		if int(p) == i {
			continue
		}
		v := row[p]
		saved = append(saved, v)
		sum += float64(v)
		mx = max(mx, v)
		row[p] = park
	}
	return sum, mx, saved
}

// unparkPositives puts back what parkPositives saved.
func unparkPositives(row []float32, i int, mem []int32, saved []float32) {
	j := 0
	for _, p := range mem {
		if int(p) != i {
			row[p] = saved[j]
			j++
		}
	}
}

// sharedRowMulti is pass 2 of the shared-shift path for row i with several
// positives mem (its group, i included): E stays at the positives, which are
// parked at 0 only while the negatives are scanned. saved is scratch space,
// returned for reuse.
func (k *kernel) sharedRowMulti(row []float32, i int, mem []int32, c float64, ps *rowStats, saved []float32) []float32 {
	posZ, maxPos, saved := parkPositives(row, i, mem, 0, saved)
	neg, maxNeg := sumMax(row)
	unparkPositives(row, i, mem, saved)
	z := posZ + neg
	ps.loss += math.Log(z) + c - k.posMean[i]
	if maxPos > maxNeg {
		ps.correct++
	}
	k.invZ.Data()[i] = float32(1 / z)
	return saved
}

// forwardPerRow is the classic path for very small τ: each row reduced
// with its own maximum, leaving M·G = P - Y in s.
func (k *kernel) forwardPerRow() rowStats {
	m := k.m
	s := k.s.Data()
	parts := make([]rowStats, workers(m))
	parallelRows(m, len(parts), func(w, lo, hi int) {
		var ps rowStats
		var saved []float32
		for i := lo; i < hi; i++ {
			row := s[i*m : (i+1)*m]
			mem := k.pos.members(i)
			if len(mem) > 2 {
				var rs rowStats
				rs, saved = softmaxRowMulti(row, i, mem, saved)
				ps.add(rs)
				continue
			}
			ps.add(softmaxRow(row, i, partner(mem, i)))
		}
		parts[w] = ps
	})
	var tot rowStats
	for _, p := range parts {
		tot.add(p)
	}
	return tot
}

// softmaxRow turns row i of S (self at index i, its one positive at p) into
// row i of M·G = P - Y and returns l_i and the row's statistics.
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

// softmaxRowMulti is softmaxRow for a row with several positives mem (its
// group, i included). saved is scratch space, returned for reuse.
func softmaxRowMulti(row []float32, i int, mem []int32, saved []float32) (rowStats, []float32) {
	ninf := float32(math.Inf(-1))
	row[i] = ninf
	// The positives are parked at -Inf while the negatives are scanned.
	posSum, maxPos, saved := parkPositives(row, i, mem, ninf, saved)
	maxNeg := ninf
	var negSum float64
	for _, v := range row {
		if v > ninf {
			negSum += float64(v)
			maxNeg = max(maxNeg, v)
		}
	}
	unparkPositives(row, i, mem, saved)
	mx := float64(max(maxPos, maxNeg))
	var z float64
	for k, v := range row {
		x := expNeg(float64(v) - mx)
		row[k] = float32(x)
		z += x
	}
	np := float64(len(mem) - 1)
	l := mx + math.Log(z) - posSum/np
	inv := 1 / z
	for k, v := range row {
		row[k] = float32(float64(v) * inv)
	}
	y := float32(1 / np)
	for _, p := range mem {
		if int(p) != i {
			row[p] -= y
		}
	}
	rs := rowStats{loss: l, pos: posSum, neg: negSum}
	if maxPos > maxNeg {
		rs.correct = 1
	}
	return rs, saved
}

// backward writes ∂L/∂z into dz given the upstream gradient g of the loss.
// It consumes what forward left in s.
func (k *kernel) backward(g float32, dz *engine.Tensor) {
	m, d := k.m, k.d
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
				mem := k.pos.members(i)
				if len(mem) == 2 {
					p := partner(mem, i)
					row[p] = -(negP[i] + negP[p])
					continue
				}
				y := float32(2 / float64(len(mem)-1))
				for _, p := range mem {
					if int(p) != i {
						row[p] -= y
					}
				}
			}
		})
	}
	// dU = A·U·g/(M·τ); A is symmetric.
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
