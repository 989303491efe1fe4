package loss

import "math"

// expNeg is e^x for the log-sum-exp arguments x = s - max ≤ 0, about 4x
// faster than math.Exp with a relative error below 1e-9 (far under float32's
// 6e-8). It reduces x = k·ln2 + r with |r| ≤ ln2/2 (Cody-Waite, two-part
// ln2), evaluates e^r by its degree-8 Taylor polynomial and scales by 2^k
// through the exponent bits. Below -708 (where float64 underflows) it gives
// 0; NaN stays NaN.
func expNeg(x float64) float64 {
	const (
		log2e = 1.44269504088896338700e+00
		ln2Hi = 6.93147180369123816490e-01
		ln2Lo = 1.90821492927058770002e-10
	)
	if !(x >= -708) {
		if x != x {
			return x
		}
		return 0
	}
	if x > 0 { // not used by the loss; keep the function total
		return math.Exp(x)
	}
	k := int(x*log2e - 0.5) // round to nearest (x ≤ 0)
	fk := float64(k)
	r := (x - fk*ln2Hi) - fk*ln2Lo
	p := 1 + r*(1+r*(1.0/2+r*(1.0/6+r*(1.0/24+r*(1.0/120+r*(1.0/720+r*(1.0/5040+r*(1.0/40320))))))))
	return p * math.Float64frombits(uint64(k+1023)<<52)
}
