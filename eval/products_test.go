package eval

import (
	"testing"

	"github.com/simclr-go/simclr/engine"
	"github.com/simclr-go/simclr/engine/enginetest"
)

// The GEMM path follows the backend's capabilities, whatever its name.
func TestProductBackendByCaps(t *testing.T) {
	ref := engine.Reference()
	for _, tc := range []struct {
		b    engine.Backend
		want bool
	}{
		{nil, false},
		{ref, false},
		{enginetest.Renamed(ref, "reference", engine.Caps{Tuned: true}), true},
		{enginetest.Renamed(ref, "dnnl", engine.Caps{}), false},
		{enginetest.Renamed(ref, "another-slow-one", engine.Caps{}), false},
	} {
		got := ProductBackend(tc.b)
		if (got != nil) != tc.want || (got != nil && got != tc.b) {
			t.Errorf("ProductBackend(%v) = %v, want the backend: %v", tc.b, got, tc.want)
		}
	}
}
