package augment_test

import (
	"fmt"
	"math/rand/v2"

	"github.com/simclr-go/simclr/augment"
)

// Two augmented views of one image, as SimCLR's loader makes them.
func Example() {
	cfg, err := augment.Preset("cifar")
	if err != nil {
		panic(err)
	}
	p, err := augment.New(cfg)
	if err != nil {
		panic(err)
	}
	src := augment.NewImage(32, 32) // planar RGB in [0,1], e.g. from augment.FromImage
	for i := range src.Pix {
		src.Pix[i] = float32(i%97) / 96
	}
	rng := rand.New(rand.NewPCG(1, 2)) // one rng per goroutine; p is shared
	v1 := make([]float32, 3*p.Size()*p.Size())
	v2 := make([]float32, 3*p.Size()*p.Size())
	if err := p.View(v1, src, rng); err != nil {
		panic(err)
	}
	if err := p.View(v2, src, rng); err != nil {
		panic(err)
	}
	fmt.Println(len(v1), p.Size())
	// Output: 3072 32
}
