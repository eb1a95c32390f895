package probe

import (
	"bufio"
	"bytes"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// hostsFile is the static table the OS consults before DNS ("hosts: files
// dns" in nsswitch.conf): vendors tell sites whose agents cannot resolve
// a server to "add it to the hosts file", so the system resolver must see
// what the agents see. The file is read again when it changes.
type hostsFile struct {
	path string

	mu      sync.Mutex
	modTime time.Time
	size    int64
	byName  map[string][]netip.Addr // lower-case names without the trailing dot
}

func newHostsFile(path string) *hostsFile {
	if path == "" {
		return nil
	}
	return &hostsFile{path: path}
}

// lookup returns the addresses the file gives host, in file order; none
// when the file does not name it or cannot be read (the OS then asks DNS).
func (h *hostsFile) lookup(host string) []netip.Addr {
	if h == nil {
		return nil
	}
	name := strings.ToLower(strings.TrimSuffix(host, "."))
	h.mu.Lock()
	defer h.mu.Unlock()
	fi, err := os.Stat(h.path)
	if err != nil {
		h.byName, h.modTime, h.size = nil, time.Time{}, 0
		return nil
	}
	if h.byName == nil || !fi.ModTime().Equal(h.modTime) || fi.Size() != h.size {
		data, err := os.ReadFile(h.path)
		if err != nil {
			return nil
		}
		h.byName, h.modTime, h.size = parseHosts(data), fi.ModTime(), fi.Size()
	}
	return h.byName[name]
}

// parseHosts reads hosts(5) lines: an address, then its names; '#'
// starts a comment. Lines with an address that does not parse are
// skipped, as the C library does.
func parseHosts(data []byte) map[string][]netip.Addr {
	out := map[string][]netip.Addr{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		ip, err := netip.ParseAddr(f[0])
		if err != nil || ip.Zone() != "" {
			continue
		}
		ip = ip.Unmap()
		for _, n := range f[1:] {
			n = strings.ToLower(strings.TrimSuffix(n, "."))
			if !slices.Contains(out[n], ip) {
				out[n] = append(out[n], ip)
			}
		}
	}
	return out
}
