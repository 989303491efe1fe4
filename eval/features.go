package eval

import (
	"fmt"

	"github.com/simclr-go/simclr/data"
	"github.com/simclr-go/simclr/engine"
	"github.com/simclr-go/simclr/nn"
)

// Features runs enc in evaluation mode (batch-norm running statistics, no
// gradient recording) over every batch of loader and returns the outputs,
// [n, enc.OutDim()] row-major in dataset order, with the images' labels
// (-1 for unlabelled images). Images that loader.SkipBad leaves out are
// absent from both.
//
// It resets tp before each batch (tensors recorded earlier become invalid)
// and turns gradient recording back on when done.
func Features(tp *engine.Tape, enc nn.Net, loader *data.EvalLoader) (feats []float32, labels []int, err error) {
	tp.SetGrad(false)
	defer func() {
		tp.Reset()
		tp.SetGrad(true)
	}()
	dim := enc.OutDim()
	for b, err := range loader.All() {
		if err != nil {
			return nil, nil, err
		}
		tp.Reset()
		x := engine.FromData(b.Views, b.N, 3, b.Size, b.Size)
		h := tp.Plain(enc.Forward(tp, x, false))
		if h.Len() != b.N*dim {
			return nil, nil, fmt.Errorf("eval: features: encoder output %v, want [%d %d]", h.Shape(), b.N, dim)
		}
		feats = append(feats, h.Data()...)
		labels = append(labels, b.Labels...)
	}
	return feats, labels, nil
}
