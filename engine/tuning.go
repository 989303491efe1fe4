package engine

// Tuning is the set of kernel choices a backend made by measuring (which
// convolution algorithm runs a layer shape, how many threads run a batch
// norm). Different choices round differently, so a computation that must
// be repeated bit for bit in another process, as a resumed training run
// must, saves its backend's Tuning and gives it to the next backend with
// SetTuning: then nothing is timed again and every call runs as before.
type Tuning struct {
	// Backend is the Name of the backend that made the choices.
	Backend string `json:"backend"`
	// Machine says where they were made (library version, instruction set,
	// threads, CPU). The choices still run elsewhere; the bits then may
	// differ.
	Machine string `json:"machine"`
	// Choices maps a backend-defined description of a kernel call (op,
	// shapes, layouts) to the choice made for it.
	Choices map[string]string `json:"choices"`
}

// Tuner is implemented by backends that choose kernels by timing. Callers
// find it with a type assertion (b.(engine.Tuner)); a backend without it
// computes the same bits in every process.
type Tuner interface {
	// Tuning returns a copy of the choices made so far (and of those given
	// by SetTuning). It grows as calls of new shapes come.
	Tuning() Tuning
	// SetTuning makes the backend use t's choices for the calls they
	// describe instead of timing them, including calls not seen yet. It
	// fails, changing nothing, when t is another backend's or holds a
	// choice this backend does not know.
	SetTuning(t Tuning) error
}
