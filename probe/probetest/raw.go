package probetest

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// RawServer accepts TCP connections on loopback and hands each to a
// handler: for servers that misbehave below HTTP and TLS (a tarpit, a
// reset, garbage). Everything closes at cleanup, and Close waits for
// every handler.
type RawServer struct {
	Addr string
	Port int

	ln       net.Listener
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    []net.Conn
	accepted atomic.Int64
	once     sync.Once
}

// NewRawServer listens on 127.0.0.1:0 and serves each connection with handle.
func NewRawServer(t testing.TB, handle func(net.Conn)) *RawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("probetest: raw server: %v", err)
	}
	return ServeRaw(t, ln, handle)
}

// ServeRaw serves connections of a listener the test opened, for a port it
// chose (beside a UDP server on the same port, say).
func ServeRaw(t testing.TB, ln net.Listener, handle func(net.Conn)) *RawServer {
	t.Helper()
	s := &RawServer{Addr: ln.Addr().String(), Port: ln.Addr().(*net.TCPAddr).Port, ln: ln}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.accepted.Add(1)
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Go(func() {
				defer c.Close()
				handle(c)
			})
		}
	})
	t.Cleanup(s.Close)
	return s
}

// NewTarpit is a RawServer that accepts and never says a word.
func NewTarpit(t testing.TB) *RawServer {
	t.Helper()
	return NewRawServer(t, Hold)
}

// Accepted is how many connections arrived so far.
func (s *RawServer) Accepted() int { return int(s.accepted.Load()) }

// Close stops accepting, closes every connection and waits for the handlers.
func (s *RawServer) Close() {
	s.once.Do(func() {
		s.ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
}

// Hold keeps a connection open and silent, reading and dropping whatever
// arrives, until the peer or Close ends it.
func Hold(c net.Conn) {
	var b [1024]byte
	for {
		if _, err := c.Read(b[:]); err != nil {
			return
		}
	}
}

// Reset aborts a connection with an RST instead of a FIN.
func Reset(c net.Conn) {
	c.(*net.TCPConn).SetLinger(0)
	c.Close()
}
