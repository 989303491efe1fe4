//go:build mpi && cgo

package dist

/*
#cgo pkg-config: ompi
#include <mpi.h>
#include <stdlib.h>

// Open MPI installs handlers for SIGSEGV, SIGBUS, SIGILL and SIGFPE (to
// print a backtrace) unless told otherwise; they would replace the Go
// runtime's, which turns nil dereferences into panics. Say so before
// MPI_Init. Errors return codes (MPI_ERRORS_RETURN) so that Go reports
// them with context before aborting the job.
static int simclr_mpi_init(int *provided) {
	setenv("OMPI_MCA_opal_signal", "", 0);
	int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, provided);
	if (rc != MPI_SUCCESS) return rc;
	return MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
}
static int simclr_rank(int *r) { return MPI_Comm_rank(MPI_COMM_WORLD, r); }
static int simclr_size(int *s) { return MPI_Comm_size(MPI_COMM_WORLD, s); }
static int simclr_allreduce_f32(float *buf, int n) {
	return MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
}
static int simclr_allreduce_f64(double *buf, int n) {
	return MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}
static int simclr_allgather(void *send, void *recv, int n, int kind) {
	MPI_Datatype t = kind == 0 ? MPI_FLOAT : kind == 1 ? MPI_DOUBLE : MPI_BYTE;
	return MPI_Allgather(send, n, t, recv, n, t, MPI_COMM_WORLD);
}
static int simclr_bcast(void *buf, int n, int kind, int root) {
	MPI_Datatype t = kind == 0 ? MPI_FLOAT : MPI_BYTE;
	return MPI_Bcast(buf, n, t, root, MPI_COMM_WORLD);
}
static int simclr_ibarrier(MPI_Request *req) { return MPI_Ibarrier(MPI_COMM_WORLD, req); }
static int simclr_test(MPI_Request *req, int *done) { return MPI_Test(req, done, MPI_STATUS_IGNORE); }
static void simclr_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }
static int simclr_finalize(void) { return MPI_Finalize(); }
static int simclr_errstr(int rc, char *buf) {
	int n = 0;
	MPI_Error_string(rc, buf, &n);
	return n;
}
*/
import "C"

import (
	"fmt"
	"os"
	"sync"
	"time"
	"unsafe"
)

// MPIAvailable reports whether this binary was built with MPI support
// (build tag `mpi`, with cgo).
const MPIAvailable = true

// mpiComm is MPI_COMM_WORLD. Calls are serialised by mu: MPI was
// initialised with MPI_THREAD_SERIALIZED because goroutines move between
// OS threads.
type mpiComm struct {
	mu         sync.Mutex
	rank, size int
	closed     bool
}

var mpiOnce struct {
	sync.Mutex
	c *mpiComm
}

func mpiErr(op string, rc C.int) error {
	if rc == C.MPI_SUCCESS {
		return nil
	}
	buf := make([]byte, C.MPI_MAX_ERROR_STRING+1)
	n := C.simclr_errstr(rc, (*C.char)(unsafe.Pointer(&buf[0])))
	return fmt.Errorf("MPI %s: %s (code %d)", op, string(buf[:n]), int(rc))
}

func initMPI(n int) (Comm, error) {
	mpiOnce.Lock()
	defer mpiOnce.Unlock()
	if mpiOnce.c != nil {
		return mpiOnce.c, nil
	}
	var provided C.int
	if err := mpiErr("MPI_Init_thread", C.simclr_mpi_init(&provided)); err != nil {
		return nil, err
	}
	c := &mpiComm{}
	if provided < C.MPI_THREAD_SERIALIZED {
		C.simclr_abort(1)
		return nil, fmt.Errorf("MPI provides thread level %d, simclr needs MPI_THREAD_SERIALIZED", int(provided))
	}
	var r, s C.int
	if err := mpiErr("MPI_Comm_rank", C.simclr_rank(&r)); err != nil {
		return nil, err
	}
	if err := mpiErr("MPI_Comm_size", C.simclr_size(&s)); err != nil {
		return nil, err
	}
	c.rank, c.size = int(r), int(s)
	if c.size != n {
		return nil, fmt.Errorf("MPI world has %d ranks but the launcher announced %d", c.size, n)
	}
	mpiOnce.c = c
	return c, nil
}

func (c *mpiComm) Rank() int { return c.rank }
func (c *mpiComm) Size() int { return c.size }

// do runs one MPI call; a failing collective cannot be recovered from (the
// other ranks are inside it too), so it aborts the job with the reason.
func (c *mpiComm) do(op string, f func() C.int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		panic("dist: MPI " + op + " after Close")
	}
	if err := mpiErr(op, f()); err != nil {
		c.abortLocked(1, err.Error())
	}
}

// maxCount keeps every MPI count inside a C int.
const maxCount = 1 << 30

func (c *mpiComm) AllreduceF32(buf []float32) {
	for len(buf) > 0 {
		n := min(len(buf), maxCount)
		c.do("MPI_Allreduce", func() C.int { return C.simclr_allreduce_f32((*C.float)(unsafe.Pointer(&buf[0])), C.int(n)) })
		buf = buf[n:]
	}
}

func (c *mpiComm) AllreduceF64(buf []float64) {
	for len(buf) > 0 {
		n := min(len(buf), maxCount)
		c.do("MPI_Allreduce", func() C.int { return C.simclr_allreduce_f64((*C.double)(unsafe.Pointer(&buf[0])), C.int(n)) })
		buf = buf[n:]
	}
}

func mpiGather[T any](c *mpiComm, send, recv []T, kind int) {
	checkGather(len(send), len(recv), c.size, send)
	if len(send) == 0 {
		return
	}
	if len(send) > maxCount {
		panic(fmt.Sprintf("dist: Allgather of %d elements per rank: too many for one MPI call", len(send)))
	}
	c.do("MPI_Allgather", func() C.int {
		return C.simclr_allgather(unsafe.Pointer(&send[0]), unsafe.Pointer(&recv[0]), C.int(len(send)), C.int(kind))
	})
}

func (c *mpiComm) AllgatherF32(send, recv []float32) { mpiGather(c, send, recv, 0) }
func (c *mpiComm) AllgatherF64(send, recv []float64) { mpiGather(c, send, recv, 1) }
func (c *mpiComm) AllgatherBytes(send, recv []byte)  { mpiGather(c, send, recv, 2) }

func mpiBcast[T any](c *mpiComm, buf []T, root, kind int) {
	for len(buf) > 0 {
		n := min(len(buf), maxCount)
		c.do("MPI_Bcast", func() C.int { return C.simclr_bcast(unsafe.Pointer(&buf[0]), C.int(n), C.int(kind), C.int(root)) })
		buf = buf[n:]
	}
}

func (c *mpiComm) BcastF32(buf []float32, root int) { mpiBcast(c, buf, root, 0) }
func (c *mpiComm) BcastBytes(buf []byte, root int)  { mpiBcast(c, buf, root, 1) }

// Barrier waits for every rank without spinning: ranks wait here while
// rank 0 measures the kNN monitor or writes a checkpoint, and a spinning
// MPI_Barrier would take a core from it.
func (c *mpiComm) Barrier() {
	var req C.MPI_Request
	c.do("MPI_Ibarrier", func() C.int { return C.simclr_ibarrier(&req) })
	pause := 50 * time.Microsecond
	for {
		var done C.int
		c.do("MPI_Test", func() C.int { return C.simclr_test(&req, &done) })
		if done != 0 {
			return
		}
		time.Sleep(pause)
		pause = min(2*pause, 10*time.Millisecond)
	}
}

// Abort prints msg and takes the whole job down (MPI_Abort: mpirun kills
// every rank, which exit non-zero).
func (c *mpiComm) Abort(code int, msg string) {
	c.mu.Lock()
	c.abortLocked(code, msg)
}

func (c *mpiComm) abortLocked(code int, msg string) {
	fmt.Fprintf(os.Stderr, "simclr: %s: %s\n", Describe(c), msg)
	os.Stderr.Sync()
	C.simclr_abort(C.int(code))
	os.Exit(code) // not reached
}

func (c *mpiComm) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	return mpiErr("MPI_Finalize", C.simclr_finalize())
}
