// Package dist is simclr's communicator for data-parallel training: N
// processes (ranks) each hold a full copy of the model, take 1/N of every
// global batch, and combine what must be global (projections for NT-Xent,
// batch-norm statistics, gradients) with collective operations.
//
// The transport is MPI (Open MPI, through cgo, in builds with the `mpi` build
// tag; see mpi.go); this package adds no wire protocol of its own. Builds
// without the tag (CGO_ENABLED=0, or no MPI headers) run single-process and
// refuse to start under mpirun with more than one rank, so that a binary
// without MPI support never trains N independent copies of a model.
//
// Comm is deliberately small, the handful of collectives data parallelism
// needs. InProc implements it for N simulated ranks in one process
// (goroutines), so the distributed ops are unit-tested without mpirun.
//
// Package dist sits low in the import graph: it imports only engine (for
// the autodiff ops in ops.go), so that nn, loss users and train can use it.
package dist

import (
	"fmt"
	"os"
	"strconv"
)

// Comm is a communicator over the ranks 0..Size()-1 of one training job.
//
// Every collective must be called by every rank, in the same order, with
// buffers of the same length (the usual MPI rule); results are identical on
// every rank. Sums are element-wise and in place. A Comm is used by one
// goroutine at a time.
type Comm interface {
	Rank() int
	Size() int
	// AllreduceF32 and AllreduceF64 replace buf by its element-wise sum
	// over the ranks.
	AllreduceF32(buf []float32)
	AllreduceF64(buf []float64)
	// AllgatherF32, AllgatherF64 and AllgatherBytes write every rank's send
	// into recv (len(recv) == Size()*len(send)), in rank order.
	AllgatherF32(send, recv []float32)
	AllgatherF64(send, recv []float64)
	AllgatherBytes(send, recv []byte)
	// BcastF32 and BcastBytes copy root's buf into every rank's buf.
	BcastF32(buf []float32, root int)
	BcastBytes(buf []byte, root int)
	Barrier()
	// Abort ends the whole job: it prints msg (prefixed with this rank) on
	// stderr and makes every rank exit with a non-zero code. It does not
	// return (the in-process Comm panics with *AbortError instead).
	Abort(code int, msg string)
	// Close ends this rank's participation (MPI_Finalize); collectives
	// after Close are errors.
	Close() error
}

// Single returns the Comm of a job of one rank: every collective is the
// identity and Abort exits the process.
func Single() Comm { return single{} }

type single struct{}

func (single) Rank() int              { return 0 }
func (single) Size() int              { return 1 }
func (single) AllreduceF32([]float32) {}
func (single) AllreduceF64([]float64) {}
func (single) AllgatherF32(send, recv []float32) {
	copy(recv, checkGather(len(send), len(recv), 1, send))
}
func (single) AllgatherF64(send, recv []float64) {
	copy(recv, checkGather(len(send), len(recv), 1, send))
}
func (single) AllgatherBytes(send, recv []byte) {
	copy(recv, checkGather(len(send), len(recv), 1, send))
}
func (single) BcastF32([]float32, int) {}
func (single) BcastBytes([]byte, int)  {}
func (single) Barrier()                {}
func (single) Close() error            { return nil }
func (single) Abort(code int, msg string) {
	fmt.Fprintln(os.Stderr, msg)
	os.Exit(code)
}

func checkGather[T any](ns, nr, size int, send []T) []T {
	if nr != ns*size {
		panic(fmt.Sprintf("dist: Allgather: recv has %d elements, want %d ranks x %d", nr, size, ns))
	}
	return send
}

// LaunchedSize is the world size a launcher (mpirun, or a PMI-based
// launcher such as srun) announced in the environment, or 0 when the
// process was not started by one.
func LaunchedSize() int {
	for _, k := range []string{"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"} {
		if v := os.Getenv(k); v != "" {
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				return n
			}
		}
	}
	return 0
}

// launchedRank is the rank the launcher announced (0 if none).
func launchedRank() int {
	for _, k := range []string{"OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"} {
		if v := os.Getenv(k); v != "" {
			if n, err := strconv.Atoi(v); err == nil && n >= 0 {
				return n
			}
		}
	}
	return 0
}

// Init returns the job's communicator. Without a launcher in the
// environment it is Single(), whatever the build, so that nothing changes
// for a plain `simclr pretrain`. Under mpirun it initialises MPI; a binary
// built without MPI support returns an error there when the job has more
// than one rank.
func Init() (Comm, error) {
	n := LaunchedSize()
	if n == 0 {
		return Single(), nil
	}
	return initMPI(n)
}

// Describe is "rank R of N" for messages.
func Describe(c Comm) string { return fmt.Sprintf("rank %d of %d", c.Rank(), c.Size()) }
