package exporter

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
)

// reference is how the Prometheus text encoder formats a value.
func reference(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	case math.IsNaN(f):
		return "NaN"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

func TestAppendFloat(t *testing.T) {
	for _, tt := range []struct {
		f    float64
		want string
	}{
		{0, "0"},
		{math.Copysign(0, -1), "-0"},
		{1, "1"},
		{-1, "-1"},
		{200, "200"},
		{123456, "123456"},
		{999999, "999999"},
		{-999999, "-999999"},
		{1e6, "1e+06"},
		{-1e6, "-1e+06"},
		{1234567, "1.234567e+06"},
		{12345670, "1.234567e+07"},
		{1805068799, "1.805068799e+09"},
		{999999999999999, "9.99999999999999e+14"},
		{1e15, "1e+15"},
		{1 << 53, "9.007199254740992e+15"},
		{1e21, "1e+21"},
		{0.5, "0.5"},
		{-0.5, "-0.5"},
		{1.5, "1.5"},
		{1e-5, "1e-05"},
		{1.7646489123456788e+09, "1.7646489123456788e+09"},
		{math.MaxFloat64, "1.7976931348623157e+308"},
		{math.SmallestNonzeroFloat64, "5e-324"},
		{math.NaN(), "NaN"},
		{math.Inf(1), "+Inf"},
		{math.Inf(-1), "-Inf"},
	} {
		if got := string(appendFloat(nil, tt.f)); got != tt.want || got != reference(tt.f) {
			t.Errorf("appendFloat(%v) = %q, want %q (strconv %q)", tt.f, got, tt.want, reference(tt.f))
		}
	}
}

func TestAppendFloatIntegers(t *testing.T) {
	check := func(i int64) {
		if got, want := string(appendFloat(nil, float64(i))), reference(float64(i)); got != want {
			t.Fatalf("appendFloat(%d) = %q, strconv %q", i, got, want)
		}
	}
	for i := int64(-2e6); i <= 2e6; i++ {
		check(i)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	for range 1_000_000 {
		// Every magnitude up to past maxExact, and round numbers.
		i := rng.Int64N(int64(1) << (1 + rng.IntN(56)))
		i -= i % []int64{1, 10, 1000, 1e6}[rng.IntN(4)]
		check(i)
		check(-i)
	}
}

func TestAppendFloatRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	for range 1_000_000 {
		f := math.Float64frombits(rng.Uint64())
		if got, want := string(appendFloat(nil, f)), reference(f); got != want {
			t.Fatalf("appendFloat(%b) = %q, strconv %q", f, got, want)
		}
	}
}

func TestAppendSeconds(t *testing.T) {
	for _, d := range []time.Duration{
		0, 1, -1, 99999, -99999, 100000, -100000, 100001, 119008584, -593250610,
		time.Millisecond, 15 * time.Microsecond, time.Second, -time.Second, time.Second + 1,
		1500 * time.Millisecond, 5 * time.Second, -2 * time.Second, 999999 * time.Second, 1e6 * time.Second,
		1e15 - 1, 1e15, -1e15 + 1, 1 << 53, math.MaxInt64, math.MinInt64, math.MinInt64 + 1,
	} {
		if got, want := string(appendSeconds(nil, d)), reference(d.Seconds()); got != want {
			t.Errorf("appendSeconds(%d) = %q, strconv %q", d, got, want)
		}
	}
}

func TestAppendSecondsRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	for range 2_000_000 {
		// Every magnitude from nanoseconds to centuries, and round ones.
		d := time.Duration(rng.Int64N(int64(1) << (1 + rng.IntN(62))))
		d -= d % []time.Duration{1, time.Microsecond, time.Millisecond, time.Second}[rng.IntN(4)]
		for _, d := range []time.Duration{d, -d} {
			if got, want := string(appendSeconds(nil, d)), reference(d.Seconds()); got != want {
				t.Fatalf("appendSeconds(%d) = %q, strconv %q", d, got, want)
			}
		}
	}
}

func FuzzAppendFloat(f *testing.F) {
	for _, v := range []float64{0, 1, -1, 999999, 1e6, 1234567, 0.5, 1.7646489123456788e+09} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v float64) {
		if got, want := string(appendFloat(nil, v)), reference(v); got != want {
			t.Errorf("appendFloat(%v) = %q, strconv %q", v, got, want)
		}
	})
}

func FuzzAppendSeconds(f *testing.F) {
	for _, d := range []int64{0, 99999, 100000, 119008584, -593250610, 1e15 - 1, 1e15} {
		f.Add(d)
	}
	f.Fuzz(func(t *testing.T, d int64) {
		if got, want := string(appendSeconds(nil, time.Duration(d))), reference(time.Duration(d).Seconds()); got != want {
			t.Errorf("appendSeconds(%d) = %q, strconv %q", d, got, want)
		}
	})
}
