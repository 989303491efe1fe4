package dist_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/simclr-go/simclr/dist"
	"github.com/simclr-go/simclr/engine"
	"github.com/simclr-go/simclr/engine/dnnl"
	"github.com/simclr-go/simclr/loss"
)

// runRanks runs f(rank, comm) for n in-process ranks concurrently and
// returns the first panic as an error.
func runRanks(n int, f func(r int, c dist.Comm)) error {
	cs := dist.InProc(n)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for r := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if p := recover(); p != nil {
					if e, ok := p.(error); ok {
						errs[r] = e
					} else {
						errs[r] = fmt.Errorf("rank %d: %v", r, p)
					}
				}
			}()
			f(r, cs[r])
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func randSlice(rng *rand.Rand, n int, scale, offset float64) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.NormFloat64()*scale + offset)
	}
	return s
}

// relErr is max|a-b| / max(max|b|, tiny).
func relErr(a, b []float32) float64 {
	var d, m float64
	for i := range b {
		d = math.Max(d, math.Abs(float64(a[i])-float64(b[i])))
		m = math.Max(m, math.Abs(float64(b[i])))
	}
	return d / math.Max(m, 1e-30)
}

func TestInProcCollectives(t *testing.T) {
	const n = 3
	err := runRanks(n, func(r int, c dist.Comm) {
		if c.Rank() != r || c.Size() != n {
			panic(fmt.Sprintf("rank/size %d/%d", c.Rank(), c.Size()))
		}
		f32 := []float32{float32(r), 1, float32(10 * r)}
		c.AllreduceF32(f32)
		if f32[0] != 3 || f32[1] != 3 || f32[2] != 30 {
			panic(fmt.Sprintf("allreduce f32 %v", f32))
		}
		f64 := []float64{float64(r) + 0.5}
		c.AllreduceF64(f64)
		if f64[0] != 4.5 {
			panic(fmt.Sprintf("allreduce f64 %v", f64))
		}
		g := make([]float32, 2*n)
		c.AllgatherF32([]float32{float32(r), -float32(r)}, g)
		for q := range n {
			if g[2*q] != float32(q) || g[2*q+1] != -float32(q) {
				panic(fmt.Sprintf("allgather %v", g))
			}
		}
		b := []float32{float32(r + 7)}
		c.BcastF32(b, 1)
		if b[0] != 8 {
			panic(fmt.Sprintf("bcast %v", b))
		}
		v := dist.AllgatherVar(c, make([]byte, r))
		for q := range n {
			if len(v[q]) != q {
				panic(fmt.Sprintf("allgather var: rank %d sent %d bytes", q, len(v[q])))
			}
		}
		c.Barrier()
	})
	if err != nil {
		t.Fatal(err)
	}
}

// An abort on one rank must wake the others blocked in a collective.
func TestInProcAbortWakesOthers(t *testing.T) {
	err := runRanks(3, func(r int, c dist.Comm) {
		if r == 2 {
			c.Abort(3, "bad image")
		}
		c.Barrier()
	})
	var ae *dist.AbortError
	if !errors.As(err, &ae) || ae.Rank != 2 || ae.Code != 3 {
		t.Fatalf("got %v, want every rank to see rank 2's abort", err)
	}
}

func TestCheckSameHash(t *testing.T) {
	err := runRanks(3, func(r int, c dist.Comm) {
		h := uint64(42)
		if r == 2 {
			h = 43
		}
		e := dist.CheckSameHash(c, "weights", h)
		if e == nil || e.Error() != "weights differs between ranks: rank(s) 2 disagree with rank 0" {
			panic(fmt.Sprintf("rank %d: %v", r, e))
		}
		if e := dist.CheckSameHash(c, "weights", 7); e != nil {
			panic(e)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
}

// GradSync must leave the sum over ranks in every gradient, for bucket
// sizes that pack several tensors and that reduce big ones in place.
func TestGradSync(t *testing.T) {
	shapes := [][]int{{3}, {5, 2}, {40}, {7}, {1}, {2, 3, 2}}
	const n = 3
	for _, bucket := range []int{4, 48, 100, 1 << 20} {
		want := make([][]float32, len(shapes))
		grads := make([][][]float32, n)
		for r := range n {
			rng := rand.New(rand.NewPCG(uint64(r), 9))
			for i, s := range shapes {
				g := randSlice(rng, engine.New(s...).Len(), 1, 0)
				grads[r] = append(grads[r], g)
				if want[i] == nil {
					want[i] = make([]float32, len(g))
				}
				for k := range g {
					want[i][k] += g[k]
				}
			}
		}
		err := runRanks(n, func(r int, c dist.Comm) {
			var ps []*engine.Tensor
			tp := engine.NewTape(engine.Reference())
			var terms []*engine.Tensor
			for i, s := range shapes {
				p := engine.New(s...)
				p.SetRequiresGrad(true)
				ps = append(ps, p)
				// loss = Σ g·p gives p the gradient g.
				terms = append(terms, tp.Sum(tp.Mul(p, engine.FromData(grads[r][i], s...))))
			}
			l := terms[0]
			for _, x := range terms[1:] {
				l = tp.Add(l, x)
			}
			tp.Backward(l)
			gs := dist.NewGradSync(c, ps, bucket)
			gs.Sync()
			for i, p := range ps {
				if e := relErr(p.Grad().Data(), want[i]); e > 1e-6 {
					panic(fmt.Sprintf("bucket %d: rank %d param %d: rel err %g", bucket, r, i, e))
				}
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// The distributed NT-Xent (all-gathered z, global loss on every rank, each
// keeping the gradient of its own rows) must give the single-process loss
// and, row for row, the single-process gradient.
func TestGatherViewsNTXent(t *testing.T) {
	for _, tc := range []struct{ ranks, b, d int }{{2, 4, 8}, {3, 3, 5}, {4, 1, 3}, {1, 5, 4}} {
		t.Run(fmt.Sprintf("ranks%d_b%d_d%d", tc.ranks, tc.b, tc.d), func(t *testing.T) {
			n, b, d := tc.ranks, tc.b, tc.d
			B := n * b
			rng := rand.New(rand.NewPCG(uint64(B), uint64(d)))
			zg := randSlice(rng, 2*B*d, 1, 0.3)
			const tau = 0.2
			// Single process on the global batch.
			tp := engine.NewTape(engine.Reference())
			z := engine.FromData(append([]float32(nil), zg...), 2*B, d)
			z.SetRequiresGrad(true)
			l, st := loss.NTXent(tp, z, B, tau)
			tp.Backward(l)
			wantLoss, wantGrad := l.Item(), z.Grad().Data()

			err := runRanks(n, func(r int, c dist.Comm) {
				zl := make([]float32, 0, 2*b*d)
				zl = append(zl, zg[r*b*d:(r+1)*b*d]...)         // view 1 of my images
				zl = append(zl, zg[(B+r*b)*d:(B+(r+1)*b)*d]...) // view 2 of the same
				tp := engine.NewTape(engine.Reference())
				z := engine.FromData(zl, 2*b, d)
				z.SetRequiresGrad(true)
				l, lst := loss.NTXent(tp, dist.GatherViews(tp, c, z), B, tau)
				tp.Backward(l)
				if l.Item() != wantLoss || lst.Accuracy != st.Accuracy {
					panic(fmt.Sprintf("rank %d: loss %v acc %v, single process %v %v", r, l.Item(), lst.Accuracy, wantLoss, st.Accuracy))
				}
				want := append(append([]float32(nil), wantGrad[r*b*d:(r+1)*b*d]...), wantGrad[(B+r*b)*d:(B+(r+1)*b)*d]...)
				if e := relErr(z.Grad().Data(), want); e > 1e-6 {
					panic(fmt.Sprintf("rank %d: gradient rel err %g", r, e))
				}
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// bnCase is one global batch norm check: per-rank batch sizes (unequal ones
// too), channels, spatial size (0 for 2-D [N,C] input), fused ReLU.
type bnCase struct {
	rows    []int
	c, s    int
	relu    bool
	blocked bool // run the batch norm on a blocked-layout input
	backend func() engine.Backend
}

// checkGlobalBN compares global BN over in-process ranks with one process
// that holds the whole batch: forward output, running statistics, input
// gradient and the sum over ranks of the gamma/beta gradients.
func checkGlobalBN(t *testing.T, tc bnCase) {
	tol := map[string]float64{"y": 2e-6, "stats": 1e-5, "dx": 1e-5, "dgamma": 1e-5, "dbeta": 1e-5}
	for k, e := range globalBNErrs(t, tc, true) {
		if e > tol[k] {
			t.Errorf("%s: rel err %g against one process (tol %g)", k, e, tol[k])
		}
	}
}

// globalBNErrs returns the relative errors of the ranks' results against
// one process's, with or without the BN sync.
func globalBNErrs(t *testing.T, tc bnCase, sync bool) map[string]float64 {
	n := len(tc.rows)
	shape := func(rows int) []int {
		if tc.s == 0 {
			return []int{rows, tc.c}
		}
		return []int{rows, tc.c, tc.s, tc.s}
	}
	per := tc.c * max(tc.s*tc.s, 1) // values per row
	total := 0
	for _, r := range tc.rows {
		total += r
	}
	rng := rand.New(rand.NewPCG(uint64(total), uint64(tc.c)))
	xg := randSlice(rng, total*per, 2, 3) // an offset: the combination must not cancel
	wg := randSlice(rng, total*per, 1, 0)
	gam, bet := randSlice(rng, tc.c, 0.5, 1), randSlice(rng, tc.c, 0.5, 0)

	type result struct{ y, dx, dgamma, dbeta, rmean, rvar []float32 }
	run := func(tp *engine.Tape, x []float32, w []float32, rows int) result {
		xt := engine.FromData(append([]float32(nil), x...), shape(rows)...)
		xt.SetRequiresGrad(true)
		in := xt
		if tc.blocked {
			// An identity 1x1 convolution: the same values, in the
			// backend's blocked layout (as between a ResNet's kernels).
			id := engine.New(tc.c, tc.c, 1, 1)
			for c := range tc.c {
				id.Data()[c*tc.c+c] = 1
			}
			in = tp.Conv2D(xt, id, nil, engine.ConvParams{StrideH: 1, StrideW: 1})
			if in.Layout() == engine.Plain {
				panic(fmt.Sprintf("the backend kept %v Plain; the case does not test a blocked layout", in.Shape()))
			}
		}
		g := engine.FromData(append([]float32(nil), gam...), tc.c)
		b := engine.FromData(append([]float32(nil), bet...), tc.c)
		g.SetRequiresGrad(true)
		b.SetRequiresGrad(true)
		st := engine.NewBNStats(tc.c)
		y := tp.BatchNorm(in, g, b, st, true, tc.relu)
		yp := append([]float32(nil), tp.Plain(y).Data()...)
		l := tp.Sum(tp.Mul(tp.Plain(y), engine.FromData(w, shape(rows)...)))
		tp.Backward(l)
		return result{yp, xt.Grad().Data(), g.Grad().Data(), b.Grad().Data(), st.Mean.Data(), st.Var.Data()}
	}
	want := run(engine.NewTape(tc.backend()), xg, wg, total)

	got := make([]result, n)
	err := runRanks(n, func(r int, c dist.Comm) {
		off := 0
		for q := range r {
			off += tc.rows[q]
		}
		tp := engine.NewTape(tc.backend())
		if sync {
			tp.SetBNSync(c)
		}
		lo, hi := off*per, (off+tc.rows[r])*per
		got[r] = run(tp, xg[lo:hi], wg[lo:hi], tc.rows[r])
	})
	if err != nil {
		t.Fatal(err)
	}
	var y, dx []float32
	dgamma, dbeta := make([]float32, tc.c), make([]float32, tc.c)
	errs := map[string]float64{}
	for r := range n {
		y = append(y, got[r].y...)
		dx = append(dx, got[r].dx...)
		for c := range tc.c {
			dgamma[c] += got[r].dgamma[c]
			dbeta[c] += got[r].dbeta[c]
		}
		errs["stats"] = max(errs["stats"], relErr(got[r].rmean, want.rmean), relErr(got[r].rvar, want.rvar))
	}
	errs["y"], errs["dx"] = relErr(y, want.y), relErr(dx, want.dx)
	errs["dgamma"], errs["dbeta"] = relErr(dgamma, want.dgamma), relErr(dbeta, want.dbeta)
	return errs
}

func TestGlobalBatchNorm(t *testing.T) {
	for _, tc := range []bnCase{
		{rows: []int{3, 3}, c: 4, s: 3, relu: true},
		{rows: []int{2, 2, 2}, c: 5, s: 3},
		{rows: []int{1, 4, 2}, c: 3, s: 5, relu: true}, // unequal slices, one row on rank 0
		{rows: []int{4, 4, 4, 4}, c: 7, s: 0},          // [N,C] (projection head)
		{rows: []int{1, 2}, c: 6, s: 0, relu: true},    // one value per channel on rank 0
	} {
		tc.backend = engine.Reference
		t.Run(fmt.Sprintf("rows%v_c%d_s%d_relu%v", tc.rows, tc.c, tc.s, tc.relu), func(t *testing.T) { checkGlobalBN(t, tc) })
	}
}

// The oneDNN backend, on its blocked layouts as in a ResNet: the global op
// runs on the backend's own batch-norm kernels.
func TestGlobalBatchNormDNNL(t *testing.T) {
	if !dnnl.Available() {
		t.Skip("built without oneDNN")
	}
	b, err := dnnl.New(1)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []bnCase{
		{rows: []int{2, 3}, c: 16, s: 4, relu: true, blocked: true},
		{rows: []int{16, 16}, c: 16, s: 32, relu: true, blocked: true}, // arena-sized
		{rows: []int{16, 16}, c: 16, s: 32, relu: false, blocked: true},
		{rows: []int{2, 2, 2}, c: 16, s: 3, blocked: true},
		{rows: []int{3, 5}, c: 5, s: 3, relu: true},
		{rows: []int{4, 4}, c: 24, s: 0},
	} {
		tc.backend = func() engine.Backend { return b }
		t.Run(fmt.Sprintf("rows%v_c%d_s%d_relu%v", tc.rows, tc.c, tc.s, tc.relu), func(t *testing.T) { checkGlobalBN(t, tc) })
	}
}

// Without SetBNSync every rank normalises with its own statistics (the
// leaky --bn local): the comparison must then fail by far, which shows that
// it can fail.
func TestLocalBatchNormDiffers(t *testing.T) {
	tc := bnCase{rows: []int{3, 3}, c: 4, s: 3, relu: true, backend: engine.Reference}
	errs := globalBNErrs(t, tc, false)
	if errs["y"] < 1e-2 || errs["dx"] < 1e-2 {
		t.Fatalf("per-rank batch norm agrees with the global one (%v): the check cannot tell them apart", errs)
	}
}

// TestGatherLabels: every rank gets the global batch's labels in rank
// order (rank r's images are the r-th slice of the global batch), the
// order of GatherViews' rows.
func TestGatherLabels(t *testing.T) {
	const n = 3
	err := runRanks(n, func(r int, c dist.Comm) {
		got := dist.GatherLabels(c, []int{10 * r, 10*r + 1, -r})
		want := []int{0, 1, 0, 10, 11, -1, 20, 21, -2}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			panic(fmt.Sprintf("rank %d: %v, want %v", r, got, want))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := dist.GatherLabels(dist.Single(), []int{4, 5}); fmt.Sprint(got) != "[4 5]" {
		t.Errorf("one process: %v", got)
	}
}
