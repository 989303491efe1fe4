package backends

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/simclr-go/simclr/engine"
	"github.com/simclr-go/simclr/engine/dnnl"
	"github.com/simclr-go/simclr/engine/enginetest"
)

func TestNewByName(t *testing.T) {
	b, err := New(Options{Name: "reference"})
	if err != nil || b.Name() != "reference" {
		t.Fatalf("New(reference) = %v, %v", b, err)
	}
	_, err = New(Options{Name: "gpu"})
	if err == nil || !strings.Contains(err.Error(), `"gpu"`) || !strings.Contains(err.Error(), "auto, dnnl, reference") {
		t.Fatalf("New(gpu) error = %v, want one naming it and the choices", err)
	}
	d, err := New(Options{Name: "dnnl", Threads: 1})
	if dnnl.Available() != (err == nil) {
		t.Fatalf("New(dnnl) error %v, but dnnl.Available() = %v", err, dnnl.Available())
	}
	if err == nil && (d.Name() != "dnnl" || !d.Caps().Tuned) {
		t.Fatalf("New(dnnl) = %s with caps %+v", d.Name(), d.Caps())
	}
}

// TestAuto checks Auto's order and its warnings with stand-in backends.
func TestAuto(t *testing.T) {
	saved := registry
	t.Cleanup(func() { registry = saved })
	tuned := enginetest.Renamed(engine.Reference(), "fast", engine.Caps{Tuned: true})
	slow := enginetest.Renamed(engine.Reference(), "slow", engine.Caps{})
	reg := func(name string, avail, fail error, b engine.Backend) Backend {
		return Backend{Name: name,
			Available: func() error { return avail },
			New: func(Options) (engine.Backend, error) {
				if fail != nil {
					return nil, fail
				}
				return b, nil
			}}
	}
	for _, tc := range []struct {
		name     string
		regs     []Backend
		want     string
		warnings []string // substrings; none expected when empty
	}{
		{"first", []Backend{reg("fast", nil, nil, tuned), reg("slow", nil, nil, slow)}, "fast", nil},
		{"unavailable", []Backend{reg("fast", errors.New("built without it"), nil, tuned), reg("slow", nil, nil, slow)},
			"slow", []string{"built without it", "slow pure-Go slow backend"}},
		{"fails", []Backend{reg("fast", nil, errors.New("no device"), tuned), reg("slow", nil, nil, slow)},
			"slow", []string{"fast backend failed (no device)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			registry = tc.regs
			var w bytes.Buffer
			b, err := New(Options{Warn: &w})
			if err != nil || b.Name() != tc.want {
				t.Fatalf("New(auto) = %v, %v; want %s", b, err, tc.want)
			}
			if len(tc.warnings) == 0 && w.Len() != 0 {
				t.Errorf("unexpected warning %q", w.String())
			}
			for _, s := range tc.warnings {
				if !strings.Contains(w.String(), s) {
					t.Errorf("warning %q lacks %q", w.String(), s)
				}
			}
		})
	}
	registry = []Backend{reg("fast", errors.New("absent"), nil, tuned)}
	if _, err := New(Options{}); err == nil || !strings.Contains(err.Error(), "absent") {
		t.Errorf("New(auto) with nothing available: error %v, want the reason", err)
	}
}

func TestRegisterRefusesDuplicates(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "twice") {
			t.Fatalf("panic = %v, want a duplicate-name message", r)
		}
	}()
	Register(Backend{Name: "reference", Available: func() error { return nil },
		New: func(Options) (engine.Backend, error) { return engine.Reference(), nil }})
}
