package loss

import (
	"math"
	"math/rand/v2"
	"testing"
)

// bothPaths runs f with the shared-shift path (where τ allows) and with the
// per-row log-sum-exp path forced.
func bothPaths(t *testing.T, f func(t *testing.T)) {
	t.Run("shared", f)
	old := minSharedShiftTau
	minSharedShiftTau = float32(math.Inf(1))
	defer func() { minSharedShiftTau = old }()
	t.Run("perRow", f)
}

// TestKernelGolden checks the backend-free kernel against PyTorch's float64
// values and gradients, on both paths.
func TestKernelGolden(t *testing.T) {
	bothPaths(t, testKernelGolden)
}

func testKernelGolden(t *testing.T) {
	for _, c := range loadGolden(t) {
		t.Run(c.Name, func(t *testing.T) {
			z := toF32(stack(c.Z1, c.Z2))
			st, dz := runKernel(naiveMatMul, z, c.N, c.D, float32(c.Temperature), 1)
			if !closeRel(st.Loss, c.Loss, 1e-5, 0) {
				t.Errorf("loss = %.9g, want %.9g (rel err %.2g)", st.Loss, c.Loss, math.Abs(st.Loss-c.Loss)/c.Loss)
			}
			checkGrad(t, "dz", dz, stack(c.GradZ1, c.GradZ2), 1e-5)
		})
	}
}

// TestKernelFD checks value and gradient against the float64 definition and
// its finite differences on random inputs, including a zero row (the eps
// branch of the normalisation) and an upstream gradient other than 1, on
// both paths.
func TestKernelFD(t *testing.T) {
	bothPaths(t, testKernelFD)
}

func testKernelFD(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		n, d    int
		tau     float64
		zeroRow int
	}{{1, 4, 0.5, -1}, {3, 5, 0.5, -1}, {4, 8, 0.1, -1}, {5, 3, 0.2, 7}, {2, 16, 1, 0}} {
		z64 := randZ(rng, 2*tc.n, tc.d, 2)
		if tc.zeroRow >= 0 {
			clear(z64[tc.zeroRow*tc.d : (tc.zeroRow+1)*tc.d])
		}
		z := toF32(z64)
		for i, v := range z {
			z64[i] = float64(v) // evaluate the oracle at the float32 point
		}
		const g = 0.75
		st, dz := runKernel(naiveMatMul, z, tc.n, tc.d, float32(tc.tau), g)
		want := oracleLoss(z64, tc.n, tc.d, tc.tau)
		if !closeRel(st.Loss, want, 1e-5, 0) {
			t.Errorf("n=%d d=%d tau=%g: loss = %.9g, want %.9g", tc.n, tc.d, tc.tau, st.Loss, want)
		}
		wg := oracleGrad(func(z []float64) float64 { return oracleLoss(z, tc.n, tc.d, tc.tau) }, z64)
		for i := range wg {
			wg[i] *= g
		}
		if r := tc.zeroRow; r >= 0 {
			// FD across z_r = 0 is meaningless (u jumps); autograd's answer
			// is ∂L/∂z_r = (∂L/∂u_r)/eps, with ∂L/∂u_r from the loss as a
			// function of the unit rows (u_r = 0 here).
			u := normalizeRows(z64, tc.d)
			gu := oracleGrad(func(u []float64) float64 { return oracleLossU(u, tc.n, tc.d, tc.tau) }, u)
			for j := r * tc.d; j < (r+1)*tc.d; j++ {
				wg[j] = g * gu[j] / NormEps
			}
			checkGrad(t, "dz zero row", dz[r*tc.d:(r+1)*tc.d], wg[r*tc.d:(r+1)*tc.d], 2e-4)
			dz = append(dz[:r*tc.d:r*tc.d], dz[(r+1)*tc.d:]...)
			wg = append(wg[:r*tc.d:r*tc.d], wg[(r+1)*tc.d:]...)
		}
		checkGrad(t, "dz", dz, wg, 2e-4)
	}
}

func normalizeRows(z []float64, d int) []float64 {
	u := make([]float64, len(z))
	for i := 0; i < len(z); i += d {
		var ss float64
		for _, v := range z[i : i+d] {
			ss += v * v
		}
		den := math.Max(math.Sqrt(ss), NormEps)
		for j, v := range z[i : i+d] {
			u[i+j] = v / den
		}
	}
	return u
}
