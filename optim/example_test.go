package optim_test

import (
	"fmt"

	"github.com/simclr-go/simclr/engine"
	"github.com/simclr-go/simclr/nn"
	"github.com/simclr-go/simclr/optim"
)

// A SimCLR optimisation loop: LARS with the paper's settings and the
// warm-up + cosine schedule stepped per iteration.
func ExampleLARS() {
	w := engine.FromData([]float32{3, 4}, 2)
	w.SetRequiresGrad(true)
	params := []nn.Param{{Name: "w", T: w, Kind: nn.Weight}}
	opt, err := optim.NewLARS(params, optim.LARSDefaults)
	if err != nil {
		panic(err)
	}
	sched := optim.Schedule{Base: 0.3, Scaling: "linear", Batch: 512, WarmupSteps: 10, TotalSteps: 100}
	if err := sched.Validate(); err != nil {
		panic(err)
	}
	tp := engine.NewTape(engine.Reference())
	for step := range sched.TotalSteps {
		opt.ZeroGrad()
		loss := tp.Sum(tp.Mul(w, w)) // minimise ‖w‖²
		tp.Backward(loss)
		tp.Reset()
		opt.Step(float32(sched.LR(step)))
	}
	fmt.Printf("peak lr %.2f, final w (%.3f, %.3f)\n", sched.Peak(), w.Data()[0], w.Data()[1])
	fmt.Println(len(opt.StateTensors()["momentum/w"]), "momentum values to checkpoint")
	// Output:
	// peak lr 0.60, final w (2.202, 2.936)
	// 2 momentum values to checkpoint
}
