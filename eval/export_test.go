package eval

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/simclr-go/simclr/nn"
)

// mlpEncoder is a projection head registered as an encoder architecture:
// an encoder that is not a ResNet.
type mlpEncoder struct {
	*nn.Head
	cfg nn.ResNetConfig
}

func (e mlpEncoder) Config() nn.ResNetConfig { return e.cfg }
func (e mlpEncoder) InChannels() int         { return e.cfg.InChannels }

func init() {
	nn.RegisterArch(nn.Arch{Name: "eval-test-mlp", Doc: "a v2 head (with BN) as an encoder", New: func(cfg nn.ResNetConfig) (nn.Encoder, error) {
		h, err := nn.NewHead(nn.HeadConfig{Version: "v2", In: cfg.InChannels, Hidden: 8, Out: nn.BaseChannels(cfg.Width), Seed: cfg.Seed})
		return mlpEncoder{h, cfg}, err
	}})
}

// TestExportAnyArchitecture: an encoder of any registered architecture is
// exported and read back (rebuilt through the registry) with the same
// config and every tensor equal, BN counters included.
func TestExportAnyArchitecture(t *testing.T) {
	cfg := nn.ResNetConfig{Arch: "eval-test-mlp", Width: 0.25, Stem: "cifar", Seed: 5}
	enc, err := nn.NewEncoder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range enc.Params() {
		for j := range p.T.Data() {
			p.T.Data()[j] = float32(i+j) / 7
		}
	}
	*enc.Counters()[0].N = 42
	path := filepath.Join(t.TempDir(), "enc.safetensors")
	meta := map[string]string{"arch": cfg.Arch, "width": "0.25", "stem": "cifar", "in_channels": "3"}
	if err := ExportEncoder(path, enc, meta); err != nil {
		t.Fatal(err)
	}
	ex, err := ReadExport(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ex.Encoder.(mlpEncoder); !ok || ex.Encoder.Config().Arch != cfg.Arch {
		t.Fatalf("read back a %T of arch %q, want the registered eval-test-mlp", ex.Encoder, ex.Encoder.Config().Arch)
	}
	want, got := encoderTensors(enc), encoderTensors(ex.Encoder)
	if len(got) != len(want) {
		t.Fatalf("%d tensors read back, %d written", len(got), len(want))
	}
	for i := range want {
		if got[i].Name != want[i].Name || !slices.Equal(got[i].F32, want[i].F32) || !slices.Equal(got[i].I64, want[i].I64) {
			t.Errorf("tensor %s differs after the round trip", want[i].Name)
		}
	}
}
