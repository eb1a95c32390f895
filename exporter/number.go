package exporter

import (
	"math"
	"strconv"
	"time"
)

// Most values in /metrics are integers (0 and 1, counts, HTTP status,
// answers) or durations, and strconv's shortest formatting is the
// costliest step of a scrape after the memory it reads. appendFloat and
// appendSeconds write those values without it; the bytes are those of
// strconv.AppendFloat(b, f, 'g', -1, 64) all the same (number_test.go).
//
// Shortest 'g' writes the fewest digits that parse back to f, in the 'e'
// form when the decimal exponent is below -4 or at least 6 (not 21, as
// %v does): 123456 is "123456", 1000000 is "1e+06", 1234567 is
// "1.234567e+06".

// maxExact bounds the values taken apart here: below 2^53 every integer
// is a float64, and any decimal of at most 15 significant digits is the
// only one of that length that rounds to its float64, so it is the
// shortest one.
const maxExact = 1e15

// appendFloat formats like the Prometheus text encoder.
func appendFloat(b []byte, f float64) []byte {
	if f > -maxExact && f < maxExact {
		if i := int64(f); float64(i) == f && (i != 0 || !math.Signbit(f)) {
			return appendInteger(b, i)
		}
	}
	switch {
	case math.IsInf(f, 1):
		return append(b, "+Inf"...)
	case math.IsInf(f, -1):
		return append(b, "-Inf"...)
	case math.IsNaN(f):
		return append(b, "NaN"...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64)
}

// appendInteger writes i, |i| < maxExact, as shortest 'g' does: plain
// below a million, else its digits without trailing zeros, in the 'e'
// form.
func appendInteger(b []byte, i int64) []byte {
	if i >= 0 && i < 10 {
		return append(b, byte('0'+i)) // the most common: 0 and 1
	}
	if i > -1e6 && i < 1e6 {
		return strconv.AppendInt(b, i, 10)
	}
	u := uint64(i)
	if i < 0 {
		b = append(b, '-')
		u = uint64(-i)
	}
	var buf [20]byte
	digits := strconv.AppendUint(buf[:0], u, 10)
	exp := len(digits) - 1 // 6..14
	for digits[len(digits)-1] == '0' {
		digits = digits[:len(digits)-1]
	}
	b = append(b, digits[0])
	if len(digits) > 1 {
		b = append(b, '.')
		b = append(b, digits[1:]...)
	}
	return append(b, 'e', '+', byte('0'+exp/10), byte('0'+exp%10))
}

// appendSeconds writes d in seconds, the bytes of appendFloat(b,
// d.Seconds()). From 100µs (below, shortest 'g' takes the 'e' form) up to
// maxExact nanoseconds, when d.Seconds() is the float64 nearest to d's
// exact decimal (Seconds adds whole and fractional seconds, which may
// round once more), that decimal is the shortest: whole seconds, and the
// nanoseconds without trailing zeros.
func appendSeconds(b []byte, d time.Duration) []byte {
	f := d.Seconds()
	u := uint64(d)
	if d < 0 {
		u = uint64(-d)
	}
	if u < 1e5 || u >= maxExact || f != float64(d)/1e9 {
		return appendFloat(b, f)
	}
	if d < 0 {
		b = append(b, '-')
	}
	b = strconv.AppendUint(b, u/1e9, 10)
	frac := u % 1e9
	if frac == 0 {
		return b
	}
	var buf [10]byte
	digits := strconv.AppendUint(buf[:0], 1e9+frac, 10) // "1" and nine digits
	digits[0] = '.'
	for digits[len(digits)-1] == '0' {
		digits = digits[:len(digits)-1]
	}
	return append(b, digits...)
}
