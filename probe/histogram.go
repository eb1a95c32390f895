package probe

import (
	"sync"
)

// Histogram counts observations into fixed buckets, for const histograms
// emitted at scrape time. The zero value is not usable: use NewHistogram.
type Histogram struct {
	mu     sync.Mutex
	bounds []float64
	counts []uint64 // per bucket, not cumulative
	sum    float64
	count  uint64
}

// NewHistogram returns a histogram with the given upper bounds, ascending.
func NewHistogram(bounds []float64) *Histogram {
	return &Histogram{bounds: bounds, counts: make([]uint64, len(bounds))}
}

// Observe records v.
func (h *Histogram) Observe(v float64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sum += v
	h.count++
	for i, b := range h.bounds {
		if v <= b {
			h.counts[i]++
			return
		}
	}
}

// Snapshot returns the count, the sum and the cumulative bucket counts by
// upper bound, as prometheus.NewConstHistogram takes them.
func (h *Histogram) Snapshot() (uint64, float64, map[float64]uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	buckets := make(map[float64]uint64, len(h.bounds))
	var cum uint64
	for i, b := range h.bounds {
		cum += h.counts[i]
		buckets[b] = cum
	}
	return h.count, h.sum, buckets
}

// AppendCumulative appends the cumulative bucket counts, in bound order, to
// dst and returns them with the count and the sum; it allocates nothing
// when dst has room.
func (h *Histogram) AppendCumulative(dst []uint64) ([]uint64, uint64, float64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var cum uint64
	for _, n := range h.counts {
		cum += n
		dst = append(dst, cum)
	}
	return dst, h.count, h.sum
}
