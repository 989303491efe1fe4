package serve

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"sync"

	"github.com/simclr-go/simclr/augment"
	"github.com/simclr-go/simclr/data"
	"github.com/simclr-go/simclr/engine"
	"github.com/simclr-go/simclr/eval"
	"github.com/simclr-go/simclr/nn"
)

// Embedder runs a network (the encoder for layer h, encoder and projection
// head for z) on images, in evaluation mode. One tape serves every caller,
// so calls are serialised; the backend serialises its kernels anyway.
type Embedder struct {
	Layer string // "h" or "z"

	mu   sync.Mutex
	tape *engine.Tape
	net  nn.Net
	pipe *augment.Pipeline
	buf  []float32
}

// NewEmbedder returns an embedder of net on tp, with pipe's deterministic
// evaluation view (resize, centre crop, normalisation).
func NewEmbedder(tp *engine.Tape, net nn.Net, pipe *augment.Pipeline, layer string) *Embedder {
	return &Embedder{Layer: layer, tape: tp, net: net, pipe: pipe}
}

// Dim is the length of an embedding.
func (e *Embedder) Dim() int { return e.net.OutDim() }

// Image embeds one decoded image.
func (e *Embedder) Image(img *augment.Image) ([]float32, error) {
	s := e.pipe.Size()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.buf = append(e.buf[:0], make([]float32, 3*s*s)...)
	if err := e.pipe.Eval(e.buf, img); err != nil {
		return nil, err
	}
	e.tape.SetGrad(false)
	defer func() {
		e.tape.Reset()
		e.tape.SetGrad(true)
	}()
	h := e.tape.Plain(e.net.Forward(e.tape, engine.FromData(e.buf, 1, 3, s, s), false))
	if h.Len() != e.Dim() {
		return nil, fmt.Errorf("embed: network gave %v for one image, want [1 %d]", h.Shape(), e.Dim())
	}
	return append([]float32(nil), h.Data()...), nil
}

// Set embeds every image of ds in dataset order ([n, Dim] row-major),
// calling progress after each batch.
func (e *Embedder) Set(ds data.Dataset, batch, workers int, progress func(done, total int)) ([]float32, error) {
	loader, err := data.NewEvalLoader(ds, e.pipe, batch, workers)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	dim := e.Dim()
	feats := make([]float32, 0, ds.Len()*dim)
	err = eval.Embed(e.tape, e.net, loader, func(b *data.EvalBatch, h []float32) error {
		feats = append(feats, h...)
		if progress != nil {
			progress(len(feats)/dim, ds.Len())
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(feats) != ds.Len()*dim {
		return nil, fmt.Errorf("embed: %d of %d images embedded", len(feats)/dim, ds.Len())
	}
	return feats, nil
}

// WeightsHash is a SHA-256 of what determines the embeddings: every
// parameter and buffer of net (names, shapes, values), the layer and the
// evaluation view. It keys the embedding cache by content, so a checkpoint
// replaced under the same name, or a different run, is never mistaken for
// the one that was embedded.
func (e *Embedder) WeightsHash() string {
	h := sha256.New()
	var b []byte
	put := func(name string, t *engine.Tensor) {
		fmt.Fprintf(h, "%s %v\n", name, t.Shape())
		b = b[:0]
		for _, v := range t.Data() {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
		}
		h.Write(b)
	}
	for _, p := range e.net.Params() {
		put(p.Name, p.T)
	}
	for _, bf := range e.net.Buffers() {
		put(bf.Name, bf.T)
	}
	c := e.pipe.Config()
	fmt.Fprintf(h, "layer %s size %d mean %v std %v\n", e.Layer, c.Size, c.Mean, c.Std)
	return hex.EncodeToString(h.Sum(nil))
}
