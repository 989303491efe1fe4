package eval

import (
	"slices"
	"testing"
)

func TestBalancedSubset(t *testing.T) {
	// Unbalanced labels: class 0 has 600 items, class 1 300, class 2 100.
	var labels []int
	for i := 0; i < 1000; i++ {
		switch {
		case i%10 < 6:
			labels = append(labels, 0)
		case i%10 < 9:
			labels = append(labels, 1)
		default:
			labels = append(labels, 2)
		}
	}
	sub, err := BalancedSubset(labels, 3, 0.1, 7)
	if err != nil {
		t.Fatal(err)
	}
	// round(0.1*1000/3) = 33 per class.
	count := make([]int, 3)
	for _, i := range sub {
		count[labels[i]]++
	}
	if !slices.Equal(count, []int{33, 33, 33}) {
		t.Errorf("per-class counts %v, want 33 each", count)
	}
	if !slices.IsSorted(sub) || len(slices.Compact(slices.Clone(sub))) != len(sub) {
		t.Error("subset not sorted or has duplicates")
	}
	again, _ := BalancedSubset(labels, 3, 0.1, 7)
	if !slices.Equal(sub, again) {
		t.Error("same seed gave a different subset")
	}
	other, _ := BalancedSubset(labels, 3, 0.1, 8)
	if slices.Equal(sub, other) {
		t.Error("different seed gave the same subset")
	}
	small, _ := BalancedSubset(labels, 3, 0.01, 7)
	for _, i := range small {
		if !slices.Contains(sub, i) {
			t.Fatalf("1%% subset item %d is not in the 10%% subset", i)
		}
	}
	if len(small) != 9 { // round(10/3)=3 per class
		t.Errorf("1%% subset has %d items, want 9", len(small))
	}
	// A class smaller than the quota contributes all it has.
	big, _ := BalancedSubset(labels, 3, 0.5, 7) // 167 per class, class 2 has 100
	count = make([]int, 3)
	for _, i := range big {
		count[labels[i]]++
	}
	if !slices.Equal(count, []int{167, 167, 100}) {
		t.Errorf("50%% counts %v, want [167 167 100]", count)
	}
	full, _ := BalancedSubset(labels, 3, 1, 7)
	if len(full) != len(labels) {
		t.Errorf("fraction 1 gave %d items", len(full))
	}
	for _, f := range []float64{0, -0.1, 1.5} {
		if _, err := BalancedSubset(labels, 3, f, 1); err == nil {
			t.Errorf("fraction %g: no error", f)
		}
	}
	if _, err := BalancedSubset([]int{0, 3}, 3, 0.5, 1); err == nil {
		t.Error("label outside classes: no error")
	}
}
