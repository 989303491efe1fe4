package data

import (
	"runtime"
	"syscall"
)

// backgroundThread runs the calling goroutine, until it exits, on its own
// OS thread at the lowest scheduling priority. Loader workers do this so
// that they take the cores only when the compute threads leave them idle:
// oneDNN splits each kernel statically across its threads, so a worker
// that shares a core with image decoding holds up the whole kernel. The
// thread ends with the goroutine, so the priority never leaks to other
// goroutines.
func backgroundThread() {
	runtime.LockOSThread()
	_ = syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), 19) // best effort
}
