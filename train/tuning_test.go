package train

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/simclr-go/simclr/engine"
)

// timedBackend stands in for a backend that chooses kernels by timing: on
// the first matrix product of each shape it "times" and takes its choice
// from pick, unless SetTuning gave one; choice "b" rounds products
// differently (one ulp up), as another algorithm would.
type timedBackend struct {
	engine.Backend
	pick    string
	choices map[string]string
	given   map[string]string
}

func newTimedBackend(pick string) *timedBackend {
	return &timedBackend{Backend: engine.Reference(), pick: pick, choices: map[string]string{}, given: map[string]string{}}
}

func (b *timedBackend) Name() string { return "timed" }

func (b *timedBackend) MatMul(c, a, x *engine.Tensor, ta, tb bool, alpha, beta float32) {
	k := fmt.Sprintf("matmul %v %v %v %v", a.Shape(), x.Shape(), ta, tb)
	ch, ok := b.choices[k]
	if !ok {
		if ch, ok = b.given[k]; !ok {
			ch = b.pick
		}
		b.choices[k] = ch
	}
	b.Backend.MatMul(c, a, x, ta, tb, alpha, beta)
	if ch == "b" {
		for i, v := range c.Data() {
			c.Data()[i] = math.Nextafter32(v, float32(math.Inf(1)))
		}
	}
}

func (b *timedBackend) Tuning() engine.Tuning {
	t := engine.Tuning{Backend: b.Name(), Machine: "test", Choices: map[string]string{}}
	for k, v := range b.given {
		t.Choices[k] = v
	}
	for k, v := range b.choices {
		t.Choices[k] = v
	}
	return t
}

func (b *timedBackend) SetTuning(t engine.Tuning) error {
	if t.Backend != b.Name() {
		return errors.New("not mine")
	}
	for k, v := range t.Choices {
		b.given[k] = v
	}
	return nil
}

// A run killed after step 5 and resumed in a process whose timing would
// choose differently continues bit for bit: the choices the killed run
// made were saved in tuning.json before its step-4 checkpoint, and the
// resumed backend is given them. Without the file (or with the choices
// saved only at the end) the resumed steps would round differently.
func TestPretrainResumeReusesTuning(t *testing.T) {
	spec := writeTinyCIFAR(t, t.TempDir(), 24, 2)
	cfg := tinyConfig(t, spec)
	straight, sb := cfg, newTimedBackend("a")
	if _, err, log := pretrain(t, straight, Options{Backend: sb}); err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	want := stepLosses(t, straight.Out)

	cfg.Out = filepath.Join(t.TempDir(), "run")
	pretrainKilledAt(t, cfg, Options{Backend: newTimedBackend("a")}, 5)
	raw, err := os.ReadFile(filepath.Join(cfg.Out, TuningFile))
	if err != nil {
		t.Fatalf("no tuning saved with the checkpoints: %v", err)
	}
	var saved engine.Tuning
	if err := json.Unmarshal(raw, &saved); err != nil || saved.Backend != "timed" || len(saved.Choices) == 0 {
		t.Fatalf("tuning.json %s: %v", raw, err)
	}
	// Every choice the uninterrupted run made, the kNN monitor's shapes
	// included, was on disk at the kill.
	if !maps.Equal(saved.Choices, sb.choices) {
		t.Errorf("tuning.json at the kill %v, want the straight run's %v", saved.Choices, sb.choices)
	}

	cfg.Resume = true
	resumed := newTimedBackend("b")
	if _, err, log := pretrain(t, cfg, Options{Backend: resumed}); err != nil {
		t.Fatalf("resume: %v\n%s", err, log)
	}
	got := stepLosses(t, cfg.Out)
	for s, w := range want {
		if math.Float64bits(got[s]) != math.Float64bits(w) {
			t.Errorf("step %d: loss %v after resume, %v straight", s, got[s], w)
		}
	}
	for k, v := range resumed.choices {
		if v != "a" {
			t.Errorf("resumed run timed %s again (%s)", k, v)
		}
	}
}

// A damaged tuning.json is an error naming the file, not silently retimed.
func TestPretrainBadTuningFile(t *testing.T) {
	spec := writeTinyCIFAR(t, t.TempDir(), 24, 2)
	cfg := tinyConfig(t, spec)
	cfg.Epochs, cfg.KNNEvery = 1, 0
	os.MkdirAll(cfg.Out, 0o755)
	for _, bad := range []string{`{"backend": "timed", "choices": {"x": 1}}`, `{"backend": "other", "choices": {}}`, `{"backend": "timed"`} {
		os.WriteFile(filepath.Join(cfg.Out, TuningFile), []byte(bad), 0o644)
		_, err, _ := pretrain(t, cfg, Options{Backend: newTimedBackend("a")})
		if err == nil || !strings.Contains(err.Error(), TuningFile) {
			t.Errorf("tuning.json %s: %v", bad, err)
		}
	}
}
