//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package train

import (
	"errors"
	"os"
	"runtime"
)

var errWouldBlock = errors.New("lock held by another process")

// lockFile cannot lock on this platform (no flock(2)); the run goes on
// with a warning rather than with a lock file that a crash would leave
// stale.
func lockFile(f *os.File) (warning string, err error) {
	return "warning: run directory locking is not supported on " + runtime.GOOS + "; make sure only one process writes " + f.Name(), nil
}
