package augment

import (
	"math/rand/v2"
	rt "reflect"
	"slices"
	"strings"
	"testing"
)

// TestColorOpsCoverConfig: every probability key of Config except the
// crop's flip_p belongs to an operator of colorOps, in the pipeline's
// order, so that a new operator cannot be sampled without being validated
// and switched off by CropFlipOnly.
func TestColorOpsCoverConfig(t *testing.T) {
	var keys, ops []string
	for _, k := range Keys() {
		if strings.HasSuffix(k, "_p") && k != "flip_p" {
			keys = append(keys, k)
		}
	}
	for _, op := range colorOps {
		ops = append(ops, op.name+"_p")
	}
	if !slices.Equal(keys, ops) {
		t.Errorf("probability keys %v, colorOps %v: want the same, in order", keys, ops)
	}
}

// TestCropFlipOnly: with every probability at 1, CropFlipOnly leaves the
// crop, flip and everything else as they were and no operator applies.
func TestCropFlipOnly(t *testing.T) {
	c, _ := Preset("imagenet")
	c.JitterP, c.GrayP, c.BlurP, c.SolarizeP, c.FlipP = 1, 1, 1, 1, 1
	cf := c.CropFlipOnly()
	want := c
	want.JitterP, want.GrayP, want.BlurP, want.SolarizeP = 0, 0, 0, 0
	if !rt.DeepEqual(cf, want) {
		t.Fatalf("CropFlipOnly = %+v, want %+v", cf, want)
	}
	p, err := New(cf)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		v := p.Sample(rng, 64, 48)
		if !v.Flip || v.Jitter || v.Gray || v.Blur || v.Solarize {
			t.Fatalf("crop/flip-only view %+v: want a flip and no other operator", v)
		}
	}
}
