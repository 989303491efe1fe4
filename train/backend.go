package train

import (
	"fmt"
	"os"

	"github.com/simclr-go/simclr/engine"
	"github.com/simclr-go/simclr/engine/dnnl"
)

// NewBackend returns the fastest backend this binary has: oneDNN when it
// was built with cgo, otherwise the plain-Go reference backend, with a
// warning on stderr because the reference backend is much slower.
// threads 0 means all cores.
func NewBackend(threads int) (engine.Backend, error) {
	if dnnl.Available() {
		b, err := dnnl.New(threads)
		if err == nil {
			return b, nil
		}
		fmt.Fprintf(os.Stderr, "simclr: warning: oneDNN backend failed (%v); using the slow pure-Go reference backend\n", err)
		return engine.Reference(), nil
	}
	fmt.Fprintln(os.Stderr, "simclr: warning: built without oneDNN (purego tag or CGO_ENABLED=0); using the slow pure-Go reference backend")
	return engine.Reference(), nil
}
