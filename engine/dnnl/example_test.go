//go:build cgo && !purego

package dnnl_test

import (
	"fmt"

	"github.com/simclr-go/simclr/engine"
	"github.com/simclr-go/simclr/engine/dnnl"
)

func Example() {
	b, err := dnnl.New(0)
	if err != nil {
		fmt.Println("oneDNN unavailable:", err)
		return
	}
	x := engine.FromData([]float32{1, 2, 3, 4}, 1, 1, 2, 2)
	w := engine.FromData([]float32{1, 1, 1, 1}, 1, 1, 2, 2)
	y := engine.New(1, 1, 1, 1)
	b.Conv2D(y, x, w, nil, engine.ConvParams{StrideH: 1, StrideW: 1})
	out := engine.New(1, 1, 1, 1)
	b.ToPlain(out, y)
	fmt.Println(b.Name(), out.Data())
	// Output: dnnl [10]
}
