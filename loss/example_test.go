package loss_test

import (
	"fmt"

	"github.com/simclr-go/simclr/engine"
	"github.com/simclr-go/simclr/loss"
)

// Two images, two views each: rows 0-1 are view 1, rows 2-3 view 2, and
// each image's views point the same way.
func ExampleNTXent() {
	z := engine.FromData([]float32{
		1, 0, 0, // image 0, view 1
		0, 2, 0, // image 1, view 1
		3, 0, 0, // image 0, view 2
		0, 1, 0, // image 1, view 2
	}, 4, 3)
	z.SetRequiresGrad(true)
	tp := engine.NewTape(engine.Reference())
	l, st := loss.NTXent(tp, z, 2, 0.5)
	tp.Backward(l) // z.Grad() now holds dL/dz
	fmt.Printf("loss %.4f, accuracy %.2f, positive cos %.2f, negative cos %.2f\n",
		l.Item(), st.Accuracy, st.PosSim, st.NegSim)
	// Output: loss 0.2395, accuracy 1.00, positive cos 1.00, negative cos 0.00
}
