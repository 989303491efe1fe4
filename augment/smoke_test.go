package augment

import (
	"math/rand/v2"
	"testing"
)

func TestSmoke(t *testing.T) {
	for _, name := range PresetNames() {
		cfg, _ := Preset(name)
		cfg.SolarizeP = 0.5
		p, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		src := NewImage(50, 37)
		r := rand.New(rand.NewPCG(1, 2))
		for i := range src.Pix {
			src.Pix[i] = r.Float32()
		}
		dst := make([]float32, 3*p.Size()*p.Size())
		for i := 0; i < 200; i++ {
			if err := p.View(dst, src, r); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.Eval(dst, src); err != nil {
			t.Fatal(err)
		}
	}
}
