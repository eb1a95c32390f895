//go:build !linux

package trace

import (
	"context"
	"net/netip"
	"time"
)

func probeHop(context.Context, netip.AddrPort, int, time.Duration) (Hop, error) {
	return Hop{}, ErrUnsupported
}
