package train

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// LockFileName is the file in a run directory that carries the writer
// lock. The lock is an OS lock on the open file (flock(2)), held for as
// long as the writing process lives: the kernel drops it when the process
// exits or is killed, so it is never stale. The file itself stays; it
// holds the PID of the last process that took the lock, for the message a
// second writer gets.
const LockFileName = ".simclr-writer.lock"

// ErrRunLocked is wrapped by LockRun's error when another process writes
// the run directory.
var ErrRunLocked = errors.New("run directory is in use")

// RunLock is a held writer lock on a run directory.
type RunLock struct {
	f *os.File
	// created is the directory this lock created (lockNewOrExistingRun),
	// removed again on Release if nothing but the lock file was written.
	created string
	// Warning is set where this platform cannot lock (see lockFile).
	Warning string
}

// LockRun takes the writer lock of run directory dir, which must exist:
// only one process at a time may write a run (pretrain, and pretrain
// --resume). A second writer fails at once with an error naming the
// directory and the PID that holds it. Readers (knn, embed, linear-eval,
// ...) take no lock and may run beside training.
func LockRun(dir string) (*RunLock, error) {
	path := filepath.Join(dir, LockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return nil, fmt.Errorf("lock run directory %s: %w", dir, err)
	}
	warning, err := lockFile(f)
	if errors.Is(err, errWouldBlock) {
		f.Close()
		return nil, fmt.Errorf("%w: %s is being written by another simclr process (%s); wait for it to finish or stop it, or choose another --out",
			ErrRunLocked, dir, holder(path))
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock run directory %s: %w", dir, err)
	}
	// Record our PID for the next would-be writer's message.
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &RunLock{f: f, Warning: warning}, nil
}

// holder describes the process holding the lock, from the PID it wrote.
func holder(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "PID unknown: " + err.Error()
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b)))
	if err != nil || pid <= 0 {
		return "PID not yet recorded in " + path
	}
	return "PID " + strconv.Itoa(pid)
}

// lockNewOrExistingRun creates the run directory dir if needed and locks
// it. A directory it created is removed again by Release when the run
// wrote nothing into it (it failed on bad input), so a rejected command
// leaves no trace.
func lockNewOrExistingRun(dir string) (*RunLock, error) {
	created := ""
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o777); err != nil {
			return nil, fmt.Errorf("run directory: %w", err)
		}
		created = dir
	}
	l, err := LockRun(dir)
	if err != nil {
		if created != "" {
			os.Remove(created)
		}
		return nil, err
	}
	l.created = created
	return l, nil
}

// Release drops the lock (the process exiting does too).
func (l *RunLock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	if l.created != "" {
		if ents, err := os.ReadDir(l.created); err == nil && len(ents) == 1 && ents[0].Name() == LockFileName {
			os.Remove(filepath.Join(l.created, LockFileName))
			os.Remove(l.created)
		}
	}
	err := l.f.Close() // closing the last descriptor releases the flock
	l.f = nil
	return err
}
