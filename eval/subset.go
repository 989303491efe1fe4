package eval

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
)

// BalancedSubset picks a class-balanced labelled subset for semi-supervised
// fine-tuning (paper B.5): round(fraction*N/classes) items of every class
// (at least one; all of a class that has fewer), chosen by a shuffle seeded
// with seed. Subsets are nested: with the same seed, the items chosen for a
// smaller fraction are among those chosen for a larger one. The result is in
// ascending (dataset) order. fraction 1 returns every item.
func BalancedSubset(labels []int, classes int, fraction float64, seed uint64) ([]int, error) {
	if !(fraction > 0 && fraction <= 1) {
		return nil, fmt.Errorf("label fraction %g must be in (0,1]", fraction)
	}
	if len(labels) == 0 {
		return nil, fmt.Errorf("balanced subset: no labelled items")
	}
	for i, l := range labels {
		if l < 0 || l >= classes {
			return nil, fmt.Errorf("balanced subset: label %d of item %d is outside [0,%d)", l, i, classes)
		}
	}
	if fraction == 1 {
		all := make([]int, len(labels))
		for i := range all {
			all[i] = i
		}
		return all, nil
	}
	per := int(math.Round(fraction * float64(len(labels)) / float64(classes)))
	if per < 1 {
		per = 1
	}
	rng := rand.New(rand.NewPCG(seed, 0xba1a7ced))
	var out []int
	for _, idx := range byClass(labels, classes) {
		// One permutation per class, drawn whatever the fraction, keeps
		// subsets of different fractions nested.
		rng.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
		out = append(out, idx[:min(per, len(idx))]...)
	}
	sort.Ints(out)
	return out, nil
}
