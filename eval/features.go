package eval

import (
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
// It is Embed collecting every batch: it resets tp first and after each
// batch (tensors recorded earlier become invalid) and turns gradient
// recording back on when done.
func Features(tp *engine.Tape, enc nn.Net, loader *data.EvalLoader) (feats []float32, labels []int, err error) {
	tp.Reset()
	err = Embed(tp, enc, loader, func(b *data.EvalBatch, h []float32) error {
		feats = append(feats, h...)
		labels = append(labels, b.Labels...)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return feats, labels, nil
}
