package eval

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/mat"
)

// FeatureSpectrum is the eigendecomposition of the features' second-moment
// matrix Σ = XᵀX/n. TrainLogReg uses it to precondition L-BFGS: embeddings
// are strongly correlated, so with weak L2 the objective is ill-conditioned
// and plain L-BFGS needs hundreds of passes over the data.
type FeatureSpectrum struct {
	Dim    int
	Values []float64 // ascending, clamped at 0
	Vecs   []float64 // [Dim, Dim] row-major; column i is the eigenvector of Values[i]
}

// MaxPreconditionDim bounds the feature width for which TrainLogReg builds a
// FeatureSpectrum itself (its cost grows as n·dim² + dim³).
const MaxPreconditionDim = 1024

// NewFeatureSpectrum computes the spectrum of n rows of x (dim features;
// standardised, so Σ is their correlation matrix), using only rows idx
// when idx is not nil.
func NewFeatureSpectrum(x []float32, n, dim int, idx []int) (*FeatureSpectrum, error) {
	if dim <= 0 || len(x) != n*dim {
		return nil, fmt.Errorf("feature spectrum: %d values for %d rows of %d features", len(x), n, dim)
	}
	rows := n
	if idx != nil {
		rows = len(idx)
	}
	if rows == 0 {
		return nil, errors.New("feature spectrum: no rows")
	}
	// Σ = XᵀX/rows, accumulated in chunks of float64 rows.
	cov := make([]float64, dim*dim)
	const chunk = 1024
	buf := make([]float64, min(rows, chunk)*dim)
	for lo := 0; lo < rows; lo += chunk {
		hi := min(rows, lo+chunk)
		xb := buf[:(hi-lo)*dim]
		for r := lo; r < hi; r++ {
			i := r
			if idx != nil {
				i = idx[r]
			}
			dst := xb[(r-lo)*dim : (r-lo+1)*dim]
			for j, v := range x[i*dim : (i+1)*dim] {
				dst[j] = float64(v)
			}
		}
		blas64.Syrk(blas.Trans, 1,
			blas64.General{Rows: hi - lo, Cols: dim, Stride: dim, Data: xb},
			1, blas64.Symmetric{Uplo: blas.Upper, N: dim, Stride: dim, Data: cov})
	}
	for i := range cov {
		cov[i] /= float64(rows)
	}
	var eig mat.EigenSym
	if !eig.Factorize(mat.NewSymDense(dim, cov), true) {
		return nil, errors.New("feature spectrum: eigendecomposition did not converge")
	}
	s := &FeatureSpectrum{Dim: dim, Values: eig.Values(nil), Vecs: make([]float64, dim*dim)}
	for i, v := range s.Values {
		s.Values[i] = math.Max(v, 0)
	}
	var v mat.Dense
	eig.VectorsTo(&v)
	for i := 0; i < dim; i++ {
		for j := 0; j < dim; j++ {
			s.Vecs[i*dim+j] = v.At(i, j)
		}
	}
	return s, nil
}

// matrix returns V (Λ + δ)^p Vᵀ, [Dim, Dim] symmetric.
func (s *FeatureSpectrum) matrix(delta, p float64) []float64 {
	d := s.Dim
	scaled := make([]float64, d*d) // V diag((λ+δ)^p)
	for j, l := range s.Values {
		f := math.Pow(l+delta, p)
		for i := 0; i < d; i++ {
			scaled[i*d+j] = s.Vecs[i*d+j] * f
		}
	}
	out := make([]float64, d*d)
	blas64.Gemm(blas.NoTrans, blas.Trans, 1,
		blas64.General{Rows: d, Cols: d, Stride: d, Data: scaled},
		blas64.General{Rows: d, Cols: d, Stride: d, Data: s.Vecs},
		0, blas64.General{Rows: d, Cols: d, Stride: d, Data: out})
	return out
}

// precondCurvature is the typical curvature of the cross-entropy along a
// unit-variance feature (p(1-p) of a softmax that is not yet confident). The
// Hessian in W is then about c·Σ + λI, and with δ = λ/c the substitution
// W = U (Σ + δI)^(-1/2) makes it about c·I in U.
const precondCurvature = 0.1

// precond maps between the weights W [classes, dim] and the optimiser's
// coordinates U, with W = U M, M = (Σ + δI)^(-1/2) symmetric.
type precond struct {
	classes, dim int
	m, mInv      []float64 // M and M⁻¹
}

func newPrecond(s *FeatureSpectrum, lambda float64, classes int) *precond {
	// δ has a floor so that M stays bounded when λ is 0 and Σ singular.
	delta := math.Max(lambda/precondCurvature, 1e-6*math.Max(s.Values[len(s.Values)-1], 1e-12))
	return &precond{classes: classes, dim: s.Dim, m: s.matrix(delta, -0.5), mInv: s.matrix(delta, 0.5)}
}

// apply sets out [classes, dim] = in · m for m one of p's matrices.
func (p *precond) apply(out, in, m []float64) {
	blas64.Gemm(blas.NoTrans, blas.NoTrans, 1,
		blas64.General{Rows: p.classes, Cols: p.dim, Stride: p.dim, Data: in},
		blas64.General{Rows: p.dim, Cols: p.dim, Stride: p.dim, Data: m},
		0, blas64.General{Rows: p.classes, Cols: p.dim, Stride: p.dim, Data: out})
}
