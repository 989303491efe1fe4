package augment

import (
	rt "reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// Every field of Config is a key, in field order, named by its yaml tag.
func TestOverridesKeysAreConfigFields(t *testing.T) {
	ty := rt.TypeOf(Config{})
	keys := Keys()
	if len(keys) != ty.NumField() || len(keys) != 15 {
		t.Fatalf("%d keys for %d fields: %v", len(keys), ty.NumField(), keys)
	}
	for i, k := range keys {
		if tag := ty.Field(i).Tag.Get("yaml"); tag != k {
			t.Errorf("key %d = %q, field %s has yaml tag %q", i, k, ty.Field(i).Name, tag)
		}
		if KeyHelp(k) == "" || KeyType(k) == "" {
			t.Errorf("key %s: no help or type", k)
		}
	}
}

// Apply replaces exactly the keys that were set; the others keep the
// base's (the preset's) values.
func TestOverridesApply(t *testing.T) {
	base, err := Preset("imagenet")
	if err != nil {
		t.Fatal(err)
	}
	var o Overrides
	for k, v := range map[string]string{"solarize_p": "0.2", "size": "64", "mean": "0.5, 0.25,0.125", "crop_ratio_max": "2"} {
		if err := o.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	got := o.Apply(base)
	want := base
	want.SolarizeP, want.Size, want.Mean, want.CropRatioMax = 0.2, 64, [3]float32{0.5, 0.25, 0.125}, 2
	if got != want {
		t.Errorf("Apply:\n got %+v\nwant %+v", got, want)
	}
	if v, ok := o.Get("size"); !ok || v != 64 {
		t.Errorf("Get(size) = %v, %v", v, ok)
	}
	if _, ok := o.Get("blur_p"); ok || o.IsSet("blur_p") {
		t.Error("blur_p reported set")
	}
	o.Unset("size")
	if o.Apply(base).Size != base.Size {
		t.Error("Unset(size) kept the value")
	}
	if All(got).Apply(Config{}) != got {
		t.Error("All(c).Apply does not give c back")
	}
}

func TestOverridesSetErrors(t *testing.T) {
	var o Overrides
	for _, c := range []struct{ key, val, want string }{
		{"solarise_p", "0.1", "unknown augmentation key"},
		{"size", "8.5", "not an integer"},
		{"flip_p", "half", "not a number"},
		{"std", "0.2,0.2", "3 comma-separated"},
	} {
		if err := o.Set(c.key, c.val); err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.key) {
			t.Errorf("Set(%s, %s): %v, want an error naming the key and %q", c.key, c.val, err, c.want)
		}
	}
	if !o.IsZero() {
		t.Error("failed Set marked a key")
	}
}

// Merge: the argument's keys win, the receiver's other keys stay.
func TestOverridesMerge(t *testing.T) {
	var a, b Overrides
	a.Set("flip_p", "0.1")
	a.Set("gray_p", "0.3")
	b.Set("gray_p", "0.4")
	a.Merge(b)
	if f, _ := a.Get("flip_p"); f != 0.1 {
		t.Errorf("flip_p %v", f)
	}
	if g, _ := a.Get("gray_p"); g != 0.4 {
		t.Errorf("gray_p %v", g)
	}
}

// YAML writes only the keys that are set and reads them back; errors name
// the line and the key.
func TestOverridesYAML(t *testing.T) {
	var o Overrides
	o.Set("blur_sigma_max", "1.5")
	o.Set("std", "0.25,0.5,1")
	b, err := yaml.Marshal(struct {
		A Overrides `yaml:"augment,omitempty"`
		E Overrides `yaml:"empty,omitempty"`
	}{A: o})
	if err != nil {
		t.Fatal(err)
	}
	if want := "augment:\n    blur_sigma_max: 1.5\n    std: [0.25, 0.5, 1]\n"; string(b) != want {
		t.Errorf("YAML:\n%s\nwant\n%s", b, want)
	}
	var back struct {
		A Overrides `yaml:"augment"`
	}
	if err := yaml.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.A != o {
		t.Errorf("round trip: %+v, want %+v", back.A, o)
	}

	for _, c := range []struct{ doc, want string }{
		{"augment:\n  flip_p: 0.5\n  sharpen_p: 1\n", `line 3: unknown key "augment.sharpen_p"`},
		{"augment:\n  size: 32.5\n", "line 2: augment.size: \"32.5\" is not an integer"},
		{"augment:\n  gray_p: 0.1\n  gray_p: 0.2\n", "line 3: augment.gray_p given twice"},
		{"augment:\n  mean: [1, 2]\n", "augment.mean"},
		{"augment: 0.5\n", "want a mapping"},
	} {
		var v struct {
			A Overrides `yaml:"augment"`
		}
		err := yaml.Unmarshal([]byte(c.doc), &v)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want an error containing %q", c.doc, err, c.want)
		}
	}
}
