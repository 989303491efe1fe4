package main

import (
	"fmt"
	"os"

	"github.com/simclr-go/simclr/dist"
)

// jobComm is the MPI communicator of `mpirun -np N simclr pretrain|bench`
// (dist.Single() without a launcher), set up by the subcommands that
// support data parallelism. main uses it to take the whole job down when
// this rank fails: every rank then exits non-zero with a message naming
// the rank and the cause, instead of the others hanging in a collective.
var jobComm dist.Comm

// dataParallel are the subcommands that run as one job under mpirun.
var dataParallel = map[string]bool{"pretrain": true, "bench": true}

// checkLauncher refuses the other subcommands under mpirun with several
// processes: they would run N independent copies writing the same outputs.
func checkLauncher(name string) error {
	if n := dist.LaunchedSize(); n > 1 && !dataParallel[name] {
		return fmt.Errorf("%s does not run over several processes: start it without mpirun (it was started as one of %d); only pretrain and bench are data-parallel", name, n)
	}
	return nil
}

// initComm starts MPI when the process was launched by mpirun.
func initComm() (dist.Comm, error) {
	if jobComm != nil {
		return jobComm, nil
	}
	c, err := dist.Init()
	if err != nil {
		return nil, err
	}
	jobComm = c
	return c, nil
}

// endComm finishes the job's communicator: on success MPI_Finalize, on a
// failure in a job of several ranks MPI_Abort (it does not return).
func endComm(err error) {
	if jobComm == nil {
		return
	}
	if err != nil && jobComm.Size() > 1 {
		jobComm.Abort(1, err.Error())
	}
	if cerr := jobComm.Close(); cerr != nil {
		fmt.Fprintln(os.Stderr, "simclr:", cerr)
	}
}
