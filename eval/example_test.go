package eval_test

import (
	"fmt"
	"math/rand/v2"

	"github.com/simclr-go/simclr/eval"
)

// ExampleLinearProbe trains a linear classifier on frozen features, choosing
// the L2 strength on a validation split of train.
func ExampleLinearProbe() {
	rng := rand.New(rand.NewPCG(1, 2))
	gen := func(n int) ([]float32, []int) {
		x := make([]float32, 2*n)
		y := make([]int, n)
		for i := range y {
			y[i] = i % 2
			x[2*i] = float32(4*y[i]) + float32(rng.NormFloat64())
			x[2*i+1] = float32(rng.NormFloat64())
		}
		return x, y
	}
	trX, trY := gen(400)
	teX, teY := gen(200)
	res, err := eval.LinearProbe(trX, trY, teX, teY, 2, 2, eval.ProbeConfig{Seed: 1})
	if err != nil {
		panic(err)
	}
	fmt.Println(res.Top1 > 0.95, res.Lambda > 0)
	// Output: true true
}

// ExampleBalancedSubset picks the 10% label subset used for fine-tuning.
func ExampleBalancedSubset() {
	labels := make([]int, 1000)
	for i := range labels {
		labels[i] = i % 10
	}
	idx, _ := eval.BalancedSubset(labels, 10, 0.1, 42)
	fmt.Println(len(idx))
	// Output: 100
}
