package nn

import (
	"slices"
	"strings"
	"testing"
)

// TestArchRegistry: an architecture registered from outside the ResNet
// code is accepted by CheckArch (hence by the training config), listed by
// ArchNames and built by NewEncoder from a validated config; NewResNet
// refuses it by name instead of building a wrong network.
func TestArchRegistry(t *testing.T) {
	var got ResNetConfig
	RegisterArch(Arch{Name: "test-linear", Doc: "a head as encoder", New: func(cfg ResNetConfig) (Encoder, error) {
		got = cfg
		h, err := NewHead(HeadConfig{Version: "v1", In: cfg.InChannels, Out: 4, Seed: cfg.Seed})
		return headEncoder{h, cfg}, err
	}})
	defer delete(archRegistry, "test-linear")

	if err := CheckArch("test-linear"); err != nil {
		t.Fatalf("CheckArch of a registered arch: %v", err)
	}
	if !slices.Contains(ArchNames(), "test-linear") || !slices.IsSorted(ArchNames()) {
		t.Errorf("ArchNames %v: want it sorted and with test-linear", ArchNames())
	}
	enc, err := NewEncoder(ResNetConfig{Arch: "test-linear", Width: 1, Stem: "cifar", Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	if got.InChannels != 3 || got.Seed != 9 || enc.OutDim() != 4 || enc.Config() != got {
		t.Errorf("New got %+v (want InChannels 3, Seed 9), built OutDim %d (want 4)", got, enc.OutDim())
	}
	m, err := NewModel(ResNetConfig{Arch: "test-linear", Width: 1, Stem: "cifar"}, HeadConfig{Version: "v1", Out: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.Encoder.(headEncoder); !ok || m.Head.Linears[0].W.Shape()[1] != 4 {
		t.Errorf("NewModel built a %T encoder and a head on %v, want the registered test-linear and a head on its 4 outputs", m.Encoder, m.Head.Linears[0].W.Shape())
	}
	if _, err := NewEncoder(ResNetConfig{Arch: "test-linear", Width: 0, Stem: "cifar"}); err == nil || !strings.Contains(err.Error(), "width") {
		t.Errorf("NewEncoder with width 0: %v, want a width error", err)
	}
	if _, err := NewResNet(ResNetConfig{Arch: "test-linear", Width: 1, Stem: "cifar"}); err == nil || !strings.Contains(err.Error(), "not a ResNet") {
		t.Errorf("NewResNet of a non-ResNet arch: %v, want 'not a ResNet'", err)
	}
	if err := CheckArch("resnet19"); err == nil || !strings.Contains(err.Error(), "resnet18|resnet34|resnet50|test-linear") {
		t.Errorf("CheckArch(resnet19) = %v, want the registered names listed", err)
	}
	for _, bad := range []Arch{{Name: "resnet18", New: archRegistry["resnet18"].New}, {Name: "x"}, {New: archRegistry["resnet18"].New}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("RegisterArch(%q) did not panic", bad.Name)
				}
			}()
			RegisterArch(bad)
		}()
	}
}

// headEncoder is a projection head posing as an encoder architecture.
type headEncoder struct {
	*Head
	cfg ResNetConfig
}

func (e headEncoder) Config() ResNetConfig { return e.cfg }
func (e headEncoder) InChannels() int      { return e.cfg.InChannels }

// TestNewEncoderIsNewResNet: for the ResNets, NewEncoder builds the same
// network, weight for weight, as NewResNet.
func TestNewEncoderIsNewResNet(t *testing.T) {
	for _, arch := range []string{"resnet18", "resnet50"} {
		cfg := ResNetConfig{Arch: arch, Width: 0.125, Stem: "imagenet", Seed: 4}
		enc, err := NewEncoder(cfg)
		if err != nil {
			t.Fatal(err)
		}
		r, err := NewResNet(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := enc.(*ResNet); !ok || !sameValues(enc.Params(), r.Params()) {
			t.Errorf("%s: NewEncoder built a %T that differs from NewResNet's", arch, enc)
		}
	}
}
