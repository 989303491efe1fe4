package eval

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/simclr-go/simclr/augment"
	"github.com/simclr-go/simclr/data"
	"github.com/simclr-go/simclr/engine"
	"github.com/simclr-go/simclr/nn"
)

// knnMemDS is a small labelled in-memory dataset of random 12x10 images.
type knnMemDS struct{ imgs []*augment.Image }

func newKNNMemDS(n int) knnMemDS {
	rng := rand.New(rand.NewPCG(9, 9))
	d := knnMemDS{}
	for range n {
		im := augment.NewImage(12, 10)
		for i := range im.Pix {
			im.Pix[i] = rng.Float32()
		}
		d.imgs = append(d.imgs, im)
	}
	return d
}

func (d knnMemDS) Len() int { return len(d.imgs) }
func (d knnMemDS) Image(i int) (*augment.Image, error) {
	if i < 0 || i >= len(d.imgs) {
		return nil, fmt.Errorf("mem: index %d", i)
	}
	return d.imgs[i], nil
}
func (d knnMemDS) Label(i int) int      { return i % 3 }
func (d knnMemDS) NumClasses() int      { return 3 }
func (d knnMemDS) ClassNames() []string { return nil }
func (d knnMemDS) Name(i int) string    { return fmt.Sprintf("mem#%d", i) }

// Features over batches of 3 equals one eval-mode forward of all images.
func TestFeaturesMatchOneBatchForward(t *testing.T) {
	ds := newKNNMemDS(8)
	ac, _ := augment.Preset("cifar")
	ac.Size = 8
	tf, err := augment.New(ac)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := nn.NewResNet(nn.ResNetConfig{Arch: "resnet18", Width: 0.125, Stem: "cifar", Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	// Non-trivial running statistics, so eval mode matters.
	for _, b := range enc.Buffers() {
		for i, v := range b.T.Data() {
			b.T.Data()[i] = v + 0.1*float32(i%3)
		}
	}
	loader, err := data.NewEvalLoader(ds, tf, 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	tp := engine.NewTape(engine.Reference())
	feats, labels, err := Features(tp, enc, loader)
	if err != nil {
		t.Fatal(err)
	}

	vl := 3 * 8 * 8
	all := make([]float32, ds.Len()*vl)
	for i := range ds.Len() {
		if err := tf.Eval(all[i*vl:(i+1)*vl], ds.imgs[i]); err != nil {
			t.Fatal(err)
		}
	}
	tp2 := engine.NewTape(engine.Reference())
	tp2.SetGrad(false)
	want := tp2.Plain(enc.Forward(tp2, engine.FromData(all, ds.Len(), 3, 8, 8), false)).Data()
	if len(feats) != len(want) || len(labels) != ds.Len() {
		t.Fatalf("%d features, %d labels; want %d, %d", len(feats), len(labels), len(want), ds.Len())
	}
	for i := range want {
		if math.Abs(float64(feats[i]-want[i])) > 1e-5*(1+math.Abs(float64(want[i]))) {
			t.Fatalf("feature %d: %v, one-batch forward %v", i, feats[i], want[i])
		}
	}
	for i, l := range labels {
		if l != i%3 {
			t.Errorf("label %d = %d", i, l)
		}
	}
}
