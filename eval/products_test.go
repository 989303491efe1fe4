package eval

import (
	"testing"

	"github.com/simclr-go/simclr/engine"
)

// named is the reference backend under another name and capabilities.
type named struct {
	engine.Backend
	name string
	caps engine.Caps
}

func (n named) Name() string      { return n.name }
func (n named) Caps() engine.Caps { return n.caps }

// The GEMM path follows the backend's capabilities, whatever its name.
func TestProductBackendByCaps(t *testing.T) {
	ref := engine.Reference()
	for _, tc := range []struct {
		b    engine.Backend
		want bool
	}{
		{nil, false},
		{ref, false},
		{named{ref, "reference", engine.Caps{Tuned: true}}, true},
		{named{ref, "dnnl", engine.Caps{}}, false},
		{named{ref, "another-slow-one", engine.Caps{}}, false},
	} {
		got := ProductBackend(tc.b)
		if (got != nil) != tc.want || (got != nil && got != tc.b) {
			t.Errorf("ProductBackend(%v) = %v, want the backend: %v", tc.b, got, tc.want)
		}
	}
}
