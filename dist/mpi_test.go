//go:build mpi && cgo

package dist_test

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/simclr-go/simclr/dist"
)

// mpirunArgs are the mpirun flags the tests need on a CI machine: root,
// more ranks than cores.
func mpirunArgs(np int) []string {
	return []string{"--allow-run-as-root", "--oversubscribe", "-np", fmt.Sprint(np)}
}

// TestMPICollectives runs this test binary under mpirun with 3 ranks; each
// rank checks the collectives against values it can compute itself.
func TestMPICollectives(t *testing.T) {
	if os.Getenv("SIMCLR_MPI_WORKER") == "collectives" {
		mpiCollectivesWorker()
		return
	}
	if _, err := exec.LookPath("mpirun"); err != nil {
		t.Skip("mpirun not installed")
	}
	args := append(mpirunArgs(3), "-x", "SIMCLR_MPI_WORKER=collectives", os.Args[0], "-test.run", "^TestMPICollectives$")
	out, err := exec.Command("mpirun", args...).CombinedOutput()
	if err != nil || strings.Count(string(out), "collectives ok") != 3 {
		t.Fatalf("mpirun: %v\n%s", err, out)
	}
}

func mpiCollectivesWorker() {
	c, err := dist.Init()
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	n, r := c.Size(), c.Rank()
	fail := func(format string, a ...any) { c.Abort(2, fmt.Sprintf(format, a...)) }
	f32 := []float32{float32(r), 1}
	c.AllreduceF32(f32)
	if f32[0] != float32(n*(n-1)/2) || f32[1] != float32(n) {
		fail("allreduce f32 %v", f32)
	}
	f64 := []float64{float64(r) + 0.25}
	c.AllreduceF64(f64)
	if f64[0] != float64(n*(n-1)/2)+0.25*float64(n) {
		fail("allreduce f64 %v", f64)
	}
	g := make([]float64, n)
	c.AllgatherF64([]float64{float64(r)}, g)
	for q := range n {
		if g[q] != float64(q) {
			fail("allgather %v", g)
		}
	}
	v := dist.AllgatherVar(c, []byte(strings.Repeat("x", r)))
	for q := range n {
		if len(v[q]) != q {
			fail("allgather var %q", v)
		}
	}
	b := []float32{float32(r + 5)}
	c.BcastF32(b, 0)
	if b[0] != 5 {
		fail("bcast %v", b)
	}
	if err := dist.CheckSameHash(c, "weights", 1); err != nil {
		fail("%v", err)
	}
	c.Barrier()
	fmt.Println("collectives ok")
	if err := c.Close(); err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	os.Exit(0)
}

// A rank that aborts takes the job down: mpirun exits non-zero and the
// message names the rank and the cause; nothing hangs (the other ranks wait
// in a barrier that never completes).
func TestMPIAbort(t *testing.T) {
	if os.Getenv("SIMCLR_MPI_WORKER") == "abort" {
		c, err := dist.Init()
		if err != nil {
			os.Exit(1)
		}
		if c.Rank() == 1 {
			c.Abort(3, "bad image")
		}
		c.Barrier()
		os.Exit(0)
	}
	if _, err := exec.LookPath("mpirun"); err != nil {
		t.Skip("mpirun not installed")
	}
	args := append(mpirunArgs(2), "-x", "SIMCLR_MPI_WORKER=abort", os.Args[0], "-test.run", "^TestMPIAbort$")
	out, err := exec.Command("mpirun", args...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "rank 1 of 2: bad image") {
		t.Fatalf("mpirun: err %v, want a failure naming rank 1's cause\n%s", err, out)
	}
}
