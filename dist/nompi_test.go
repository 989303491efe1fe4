//go:build !mpi || !cgo

package dist_test

import (
	"strings"
	"testing"

	"github.com/simclr-go/simclr/dist"
)

// A binary without MPI support started by mpirun with several ranks must
// refuse rather than train N independent copies.
func TestNoMPIRefusesUnderLauncher(t *testing.T) {
	t.Setenv("OMPI_COMM_WORLD_SIZE", "2")
	t.Setenv("OMPI_COMM_WORLD_RANK", "1")
	_, err := dist.Init()
	if err == nil || !strings.Contains(err.Error(), "built without MPI support") || !strings.Contains(err.Error(), "rank 1 of 2") {
		t.Fatalf("Init under a 2-rank launcher: %v", err)
	}
	t.Setenv("OMPI_COMM_WORLD_SIZE", "1")
	if c, err := dist.Init(); err != nil || c.Size() != 1 {
		t.Fatalf("Init under a 1-rank launcher: %v", err)
	}
}
