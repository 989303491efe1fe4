package method

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/simclr-go/simclr/data"
	"github.com/simclr-go/simclr/engine"
	"github.com/simclr-go/simclr/loss"
	"github.com/simclr-go/simclr/nn"
)

func TestRegistry(t *testing.T) {
	names := Names()
	if !slices.Contains(names, "simclr") || !slices.Contains(names, "supcon") || !slices.IsSorted(names) {
		t.Errorf("Names() = %v, want simclr and supcon, sorted", names)
	}
	if _, err := Lookup(Default); err != nil {
		t.Errorf("default method: %v", err)
	}
	_, err := Lookup("no-such")
	if err == nil || err.Error() != `method "no-such": want one of `+strings.Join(names, "|") {
		t.Errorf("Lookup(byol): %v", err)
	}
	if _, err := New("simclr", nil, Config{}); err == nil || !strings.Contains(err.Error(), "temperature 0") {
		t.Errorf("New with no temperature: %v", err)
	}
	for _, s := range []Spec{{Name: "simclr", New: registry["simclr"].New}, {Name: "x"}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Register(%+v) did not panic", s)
				}
			}()
			Register(s)
		}()
	}
	if !strings.Contains(Help(), "supcon (supervised contrastive") {
		t.Errorf("Help() = %s", Help())
	}
}

// unlabelled is a two-image dataset without labels.
type unlabelled struct{ data.Dataset }

func (unlabelled) NumClasses() int { return 0 }

func TestCheckData(t *testing.T) {
	sc, _ := Lookup("supcon")
	err := sc.CheckData(unlabelled{}, "folder:imgs")
	if err == nil || !strings.Contains(err.Error(), "method supcon trains on class labels, but folder:imgs has none") {
		t.Errorf("supcon on unlabelled data: %v", err)
	}
	s, _ := Lookup("simclr")
	if err := s.CheckData(unlabelled{}, "folder:imgs"); err != nil {
		t.Errorf("simclr on unlabelled data: %v", err)
	}
}

func tinyModel(t *testing.T) *nn.Model {
	m, err := nn.NewModel(nn.ResNetConfig{Arch: "resnet18", Width: 0.125, Stem: "cifar", Seed: 1}, nn.HeadConfig{Version: "v1", Out: 8, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func tinyBatch(labels []int) *data.PairBatch {
	n, size := len(labels), 4
	rng := rand.New(rand.NewPCG(1, 2))
	v := make([]float32, 2*n*3*size*size)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	idx := make([]int, n)
	for i := range idx {
		idx[i] = 10 + i
	}
	return &data.PairBatch{Views: v, N: n, Size: size, Indices: idx, Labels: labels}
}

// TestMethodsAreTheirLosses: each method's Loss is its loss function on
// the model's z of the stacked views, and its parameters are the model's
// under checkpoint names.
func TestMethodsAreTheirLosses(t *testing.T) {
	m := tinyModel(t)
	b := tinyBatch([]int{0, 1, 0, 2})
	tp := engine.NewTape(engine.Reference())
	z := m.Forward(tp, engine.FromData(b.Views, 2*b.N, 3, b.Size, b.Size), true)
	_, wantNT := loss.NTXent(tp, z, b.N, 0.3)
	_, wantSC := loss.SupCon(tp, z, b.Labels, 0.3)
	tp.Reset()
	for name, want := range map[string]loss.Stats{"simclr": wantNT, "supcon": wantSC} {
		// BN running statistics move on each training forward; reset the
		// model so that both forwards see the same one.
		meth, err := New(name, tinyModel(t), Config{Temperature: 0.3})
		if err != nil {
			t.Fatal(err)
		}
		_, st, err := meth.Loss(tp, b)
		tp.Reset()
		if err != nil || st != want {
			t.Errorf("%s: %+v, %v; want %+v", name, st, err, want)
		}
		ps := meth.Params()
		if len(ps) != len(m.Params()) || ps[0].Name != "encoder.conv1.weight" || !strings.HasPrefix(ps[len(ps)-1].Name, "head.") {
			t.Errorf("%s: params %d, first %s, last %s", name, len(ps), ps[0].Name, ps[len(ps)-1].Name)
		}
	}
	if wantNT == wantSC {
		t.Error("the batch's labels do not change the loss; the test cannot tell the methods apart")
	}
}

func TestSupConBatchWithoutLabel(t *testing.T) {
	meth, err := New("supcon", tinyModel(t), Config{Temperature: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	tp := engine.NewTape(engine.Reference())
	_, _, err = meth.Loss(tp, tinyBatch([]int{0, -1, 1}))
	if err == nil || !strings.Contains(err.Error(), "supcon: image 1 of the batch (dataset index 11) has no label") {
		t.Errorf("error %v", err)
	}
	b := tinyBatch([]int{0, 1})
	b.Labels = b.Labels[:1]
	if _, _, err = meth.Loss(tp, b); err == nil || !strings.Contains(err.Error(), "batch of 2 images carries 1 labels") {
		t.Errorf("error %v", err)
	}
}

// TestGatherIsUsed: with Config.Gather and GatherLabels set (a
// data-parallel job), the methods compute their loss on what they return.
// Here the "other process" holds the same batch with the classes shifted,
// so the global batch is the local one twice.
func TestGatherIsUsed(t *testing.T) {
	b := tinyBatch([]int{0, 1, 0, 2})
	n := b.N
	for _, name := range []string{"simclr", "supcon"} {
		var zGlobal []float32
		var dim int
		cfg := Config{Temperature: 0.4,
			Gather: func(tp *engine.Tape, z *engine.Tensor) *engine.Tensor {
				z = tp.Plain(z)
				dim = z.Dim(1)
				zd := z.Data()
				v1, v2 := zd[:n*dim], zd[n*dim:]
				zGlobal = slices.Concat(v1, v1, v2, v2)
				return engine.FromData(slices.Clone(zGlobal), 4*n, dim)
			},
			GatherLabels: func(l []int) ([]int, error) {
				out := slices.Clone(l)
				for _, c := range l {
					out = append(out, c+10)
				}
				return out, nil
			}}
		meth, err := New(name, tinyModel(t), cfg)
		if err != nil {
			t.Fatal(err)
		}
		tp := engine.NewTape(engine.Reference())
		_, st, err := meth.Loss(tp, b)
		if err != nil {
			t.Fatal(err)
		}
		z := engine.FromData(zGlobal, 4*n, dim)
		var want loss.Stats
		if name == "simclr" {
			_, want = loss.NTXent(tp, z, 2*n, 0.4)
		} else {
			_, want = loss.SupCon(tp, z, []int{0, 1, 0, 2, 10, 11, 10, 12}, 0.4)
		}
		if st != want {
			t.Errorf("%s: %+v, want the global batch's %+v", name, st, want)
		}
	}
}
