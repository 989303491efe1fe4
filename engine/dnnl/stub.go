//go:build !cgo || purego

package dnnl

import (
	"errors"

	"github.com/simclr-go/simclr/engine"
)

// Options configure a backend made by NewWithOptions (see the cgo build).
type Options struct {
	Threads       int
	Deterministic bool
}

// New fails: this binary was built without oneDNN.
func New(threads int) (engine.Backend, error) { return NewWithOptions(Options{Threads: threads}) }

// NewWithOptions fails: this binary was built without oneDNN.
func NewWithOptions(Options) (engine.Backend, error) {
	return nil, errors.New("dnnl: built without oneDNN (purego tag or CGO_ENABLED=0); use engine.Reference()")
}

// Version is empty: no oneDNN is linked.
func Version() string { return "" }

// Available reports whether New can succeed.
func Available() bool { return false }

func maxThreads() int { return 0 }
