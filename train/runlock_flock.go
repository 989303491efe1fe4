//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package train

import (
	"errors"
	"os"
	"syscall"
)

var errWouldBlock = errors.New("lock held by another process")

// lockFile takes an exclusive flock(2) on f without waiting. flock locks
// belong to the open file description, so they also exclude a second
// open of the same file within one process, and are released by the
// kernel when the process dies.
func lockFile(f *os.File) (warning string, err error) {
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err != syscall.EINTR {
			break
		}
	}
	if err == syscall.EWOULDBLOCK {
		return "", errWouldBlock
	}
	return "", err
}
