package engine_test

import (
	"fmt"

	"github.com/simclr-go/simclr/engine"
)

// A linear classifier on two samples: forward, loss, backward, SGD step.
func Example() {
	w := engine.FromData([]float32{0.5, -0.5, 0.25, 0.75}, 2, 2) // [out, in]
	w.SetRequiresGrad(true)
	x := engine.FromData([]float32{1, 2, -1, 0.5}, 2, 2) // two samples
	labels := []int{1, 0}

	tp := engine.NewTape(engine.Reference())
	for step := range 3 {
		loss := tp.CrossEntropy(tp.Linear(x, w, nil), labels)
		fmt.Printf("step %d: loss %.4f\n", step, loss.Item())
		tp.Backward(loss)
		for i, g := range w.Grad().Data() {
			w.Data()[i] -= 0.5 * g
		}
		w.ZeroGrad()
		tp.Reset() // recycle every buffer the step used
	}
	// Output:
	// step 0: loss 0.6618
	// step 1: loss 0.5066
	// step 2: loss 0.3936
}
