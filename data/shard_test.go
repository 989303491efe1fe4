package data

import (
	"slices"
	"testing"
)

// Rank r's shard of every batch is the contiguous slice r of the unsharded
// loader's batch, view for view, for any number of ranks and when resuming.
func TestPairLoaderShards(t *testing.T) {
	ds := &fakeDS{n: 41}
	cfg := LoaderConfig{Batch: 12, Workers: 2, Seed: 7, Shuffle: true, DropLast: true}
	whole := collect(t, newPair(t, ds, cfg), 2, 1)
	vl := 27 // 3x3x3 values per view
	for _, ranks := range []int{2, 3, 4} {
		per := cfg.Batch / ranks
		for r := range ranks {
			c := cfg
			c.Rank, c.Ranks = r, ranks
			got := collect(t, newPair(t, ds, c), 2, 1)
			if len(got) != len(whole) {
				t.Fatalf("%d ranks, rank %d: %d batches, want %d", ranks, r, len(got), len(whole))
			}
			for b, w := range whole {
				g := got[b]
				if g.N != per || !slices.Equal(g.Indices, w.Indices[r*per:(r+1)*per]) {
					t.Fatalf("%d ranks, rank %d, batch %d: images %v, want %v", ranks, r, b, g.Indices, w.Indices[r*per:(r+1)*per])
				}
				for v := range 2 {
					want := w.Views[(v*w.N+r*per)*vl : (v*w.N+(r+1)*per)*vl]
					if !slices.Equal(g.Views[v*per*vl:(v+1)*per*vl], want) {
						t.Fatalf("%d ranks, rank %d, batch %d: view %d differs from the unsharded loader's", ranks, r, b, v+1)
					}
				}
			}
		}
	}
	bad := []struct {
		rank, ranks int
		drop        bool
		msg         string
	}{
		{0, 5, true, "batch 12 is not a multiple of the 5 ranks"},
		{3, 3, true, "rank 3 outside [0,3)"},
		{0, 2, false, "needs DropLast"},
	}
	for _, b := range bad {
		c := cfg
		c.Rank, c.Ranks, c.DropLast = b.rank, b.ranks, b.drop
		_, err := NewPairLoader(ds, fakeTF{size: 3, failOn: -1}, c)
		wantErr(t, err, b.msg)
	}
}
