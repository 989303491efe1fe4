package dist

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"
	"strings"

	"github.com/simclr-go/simclr/engine"
)

// DefaultBucketBytes is the gradient bucket size: big enough that the
// per-call latency (a few µs on one host, tens of µs over a network) is
// small against the transfer, small enough that the bucket buffer stays a
// fraction of one copy of the gradients (ResNet-18 width 1/4 has 2.8 MB of
// them, width 1 45 MB).
const DefaultBucketBytes = 1 << 20

// GradSync sums the gradients of a fixed list of parameters over the ranks.
//
// Small gradients are packed into buckets of about DefaultBucketBytes and
// reduced one bucket per MPI call; a gradient at least a bucket big is
// reduced in place. So the communication buffers hold at most one bucket,
// not a second copy of the gradients.
//
// The reduction runs after the backward pass, not overlapped with it. On
// one host the transfer is a memory copy done by the CPU cores the kernels
// use, and Open MPI progresses non-blocking collectives only inside MPI
// calls, so overlap would move the same work around rather than hide it;
// docs/distributed.md has the measured share of communication per step.
type GradSync struct {
	c       Comm
	params  []*engine.Tensor
	buckets [][2]int // [first, last) parameter index of each bucket; a single big one is reduced in place
	buf     []float32
}

// NewGradSync prepares the buckets for params (in this order on every rank).
// bucketBytes <= 0 means DefaultBucketBytes.
func NewGradSync(c Comm, params []*engine.Tensor, bucketBytes int) *GradSync {
	if bucketBytes <= 0 {
		bucketBytes = DefaultBucketBytes
	}
	limit := max(bucketBytes/4, 1)
	s := &GradSync{c: c, params: params}
	first, n := 0, 0
	for i, p := range params {
		if n > 0 && n+p.Len() > limit {
			s.buckets = append(s.buckets, [2]int{first, i})
			first, n = i, 0
		}
		n += p.Len()
	}
	if first < len(params) {
		s.buckets = append(s.buckets, [2]int{first, len(params)})
	}
	most := 0
	for _, b := range s.buckets {
		if b[1]-b[0] > 1 {
			m := 0
			for _, p := range params[b[0]:b[1]] {
				m += p.Len()
			}
			most = max(most, m)
		}
	}
	s.buf = make([]float32, most)
	return s
}

// Buckets is the number of allreduce calls per Sync.
func (s *GradSync) Buckets() int { return len(s.buckets) }

// Sync replaces every parameter's gradient by its sum over the ranks. Every
// parameter must have a gradient (the model is the same on every rank, so
// this holds on all of them or none).
func (s *GradSync) Sync() {
	if s.c.Size() == 1 {
		return
	}
	for _, b := range s.buckets {
		ps := s.params[b[0]:b[1]]
		for _, p := range ps {
			if p.Grad() == nil {
				panic(fmt.Sprintf("dist: GradSync: parameter %v has no gradient", p.Shape()))
			}
		}
		if len(ps) == 1 {
			s.c.AllreduceF32(ps[0].Grad().Data())
			continue
		}
		off := 0
		for _, p := range ps {
			off += copy(s.buf[off:], p.Grad().Data())
		}
		s.c.AllreduceF32(s.buf[:off])
		off = 0
		for _, p := range ps {
			off += copy(p.Grad().Data(), s.buf[off:])
		}
	}
}

// BcastTensors copies rank 0's values of ts into every rank's (the initial
// weights and BN statistics, so that every rank starts from the same model
// whatever its seed or RNG).
func BcastTensors(c Comm, ts []*engine.Tensor) {
	if c.Size() == 1 {
		return
	}
	for _, t := range ts {
		c.BcastF32(t.Data(), 0)
	}
}

// Hash is an FNV-1a hash of the bits of ts, for checking that the ranks'
// weights are still identical.
func Hash(ts []*engine.Tensor) uint64 {
	h := fnv.New64a()
	var b [4]byte
	for _, t := range ts {
		for _, v := range t.Data() {
			binary.LittleEndian.PutUint32(b[:], math.Float32bits(v))
			h.Write(b[:])
		}
	}
	return h.Sum64()
}

// CheckSameHash compares h across the ranks and returns an error naming
// the ranks whose value differs from rank 0's (what).
func CheckSameHash(c Comm, what string, h uint64) error {
	if c.Size() == 1 {
		return nil
	}
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], h)
	all := make([]byte, 8*c.Size())
	c.AllgatherBytes(b[:], all)
	var bad []string
	for r := 1; r < c.Size(); r++ {
		if !bytes.Equal(all[8*r:8*r+8], all[:8]) {
			bad = append(bad, fmt.Sprint(r))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%s differs between ranks: rank(s) %s disagree with rank 0", what, strings.Join(bad, ", "))
	}
	return nil
}

// AllgatherVar gathers byte strings of different lengths from every rank,
// in rank order.
func AllgatherVar(c Comm, b []byte) [][]byte {
	if c.Size() == 1 {
		return [][]byte{b}
	}
	var nb [8]byte
	binary.LittleEndian.PutUint64(nb[:], uint64(len(b)))
	lens := make([]byte, 8*c.Size())
	c.AllgatherBytes(nb[:], lens)
	most := 0
	for r := range c.Size() {
		most = max(most, int(binary.LittleEndian.Uint64(lens[8*r:])))
	}
	send := make([]byte, most+1) // +1: never a zero-length gather
	copy(send, b)
	all := make([]byte, len(send)*c.Size())
	c.AllgatherBytes(send, all)
	out := make([][]byte, c.Size())
	for r := range out {
		n := int(binary.LittleEndian.Uint64(lens[8*r:]))
		out[r] = all[r*len(send) : r*len(send)+n]
	}
	return out
}

// BcastVar copies rank 0's byte string, whatever its length, to every rank
// and returns it.
func BcastVar(c Comm, b []byte) []byte {
	if c.Size() == 1 {
		return b
	}
	var nb [8]byte
	binary.LittleEndian.PutUint64(nb[:], uint64(len(b)))
	c.BcastBytes(nb[:], 0)
	n := int(binary.LittleEndian.Uint64(nb[:]))
	if c.Rank() != 0 {
		b = make([]byte, n)
	}
	c.BcastBytes(b, 0)
	return b
}
