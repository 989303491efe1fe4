package main

import (
	"strings"
	"testing"
)

// Under mpirun with several processes only the data-parallel subcommands
// run; the others would be N copies writing the same outputs.
func TestCheckLauncher(t *testing.T) {
	for _, n := range []string{"pretrain", "bench", "knn", "embed"} {
		if err := checkLauncher(n); err != nil {
			t.Errorf("%s without a launcher: %v", n, err)
		}
	}
	t.Setenv("OMPI_COMM_WORLD_SIZE", "2")
	for _, n := range []string{"pretrain", "bench"} {
		if err := checkLauncher(n); err != nil {
			t.Errorf("%s under mpirun: %v", n, err)
		}
	}
	if err := checkLauncher("embed"); err == nil || !strings.Contains(err.Error(), "embed does not run over several processes") {
		t.Errorf("embed under mpirun -np 2: %v", err)
	}
}
