// Package backends chooses the engine.Backend: it is the one constructor
// that the trainer and every command use, a small registry by name in the
// spirit of GoMLX's backends package.
//
// The built-in backends are "dnnl" (oneDNN through cgo; fails in builds
// without it) and "reference" (plain Go, always available). "auto" (or an
// empty name) is the first registered backend that this binary can start,
// in registration order, so oneDNN where it is built in and the reference
// otherwise, with a warning because the reference is much slower.
//
// A new backend registers itself here with one Register call next to the
// built-ins (see docs/backends.md).
package backends

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/simclr-go/simclr/engine"
	"github.com/simclr-go/simclr/engine/dnnl"
)

// Auto is the name that picks the fastest backend this binary has.
const Auto = "auto"

// Options configure New. Every backend reads the fields that apply to it and
// ignores the rest, so a field for one backend (say oneDNN's determinism)
// needs no change to the others.
type Options struct {
	// Name is a registered backend's name, or Auto ("" means Auto).
	Name string
	// Threads caps the compute threads; 0 (or less) uses every core.
	Threads int
	// Deterministic asks for kernels chosen by fixed rules instead of by
	// timing, so that two processes with the same Threads on the same
	// machine compute the same bits (dnnl.Options.Deterministic). The
	// reference backend is deterministic anyway and ignores it.
	Deterministic bool
	// Warn receives warnings, such as falling back to the slow reference
	// backend; nil means os.Stderr.
	Warn io.Writer
}

// Backend describes one registered backend.
type Backend struct {
	Name string
	// Available says why the backend cannot start in this binary or on
	// this machine (nil if it can). Auto skips unavailable backends.
	Available func() error
	// New starts the backend.
	New func(Options) (engine.Backend, error)
}

var (
	mu       sync.Mutex
	registry []Backend // in registration order, which is Auto's order
)

// Register adds a backend. Names must be unique and not Auto.
func Register(b Backend) {
	mu.Lock()
	defer mu.Unlock()
	if b.Name == "" || b.Name == Auto || b.New == nil || b.Available == nil {
		panic(fmt.Sprintf("backends: Register: incomplete registration %q", b.Name))
	}
	for _, r := range registry {
		if r.Name == b.Name {
			panic(fmt.Sprintf("backends: Register: %q registered twice", b.Name))
		}
	}
	registry = append(registry, b)
}

func init() {
	Register(Backend{
		Name: "dnnl",
		Available: func() error {
			if !dnnl.Available() {
				return errors.New("built without oneDNN (purego tag or CGO_ENABLED=0)")
			}
			return nil
		},
		New: func(o Options) (engine.Backend, error) {
			return dnnl.NewWithOptions(dnnl.Options{Threads: o.Threads, Deterministic: o.Deterministic})
		},
	})
	Register(Backend{
		Name:      "reference",
		Available: func() error { return nil },
		New:       func(Options) (engine.Backend, error) { return engine.Reference(), nil },
	})
}

// Names lists the registered backends, Auto first: the values Options.Name
// (and a --backend flag) accepts.
func Names() []string {
	mu.Lock()
	defer mu.Unlock()
	names := []string{Auto}
	for _, r := range registry {
		names = append(names, r.Name)
	}
	return names
}

// New starts the backend that o names. With Auto it starts the first
// available registered backend, skipping those that fail to start; when it
// falls back to a backend without tuned kernels (the reference) it warns
// on o.Warn, saying why, because training will be much slower.
func New(o Options) (engine.Backend, error) {
	warn := o.Warn
	if warn == nil {
		warn = os.Stderr
	}
	mu.Lock()
	regs := append([]Backend(nil), registry...)
	mu.Unlock()
	name := o.Name
	if name == "" {
		name = Auto
	}
	if name != Auto {
		for _, r := range regs {
			if r.Name == name {
				return r.New(o)
			}
		}
		return nil, fmt.Errorf("unknown backend %q (want %s)", name, strings.Join(Names(), ", "))
	}
	var why []string
	for i, r := range regs {
		if err := r.Available(); err != nil {
			why = append(why, err.Error())
			continue
		}
		b, err := r.New(o)
		if err != nil {
			why = append(why, fmt.Sprintf("%s backend failed (%v)", r.Name, err))
			continue
		}
		if i > 0 && !b.Caps().Tuned {
			fmt.Fprintf(warn, "simclr: warning: %s; using the slow pure-Go %s backend\n", strings.Join(why, "; "), b.Name())
		}
		return b, nil
	}
	return nil, fmt.Errorf("no backend could start: %s", strings.Join(why, "; "))
}
