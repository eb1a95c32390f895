package configs

import (
	"net/url"
	"os"
	"strings"
)

// PACSource is where a pac or wpad path gets its PAC file: exactly one
// of URL (http://, https:// or file://) and File, or WPAD.
type PACSource struct {
	URL  string
	File string
	// WPAD finds the file at http://wpad.<domain>/wpad.dat for the
	// search domains of the first resolver (Domains), walking up.
	WPAD    bool
	Domains []string
}

// String names the source as reports and errors do.
func (s *PACSource) String() string {
	switch {
	case s.WPAD:
		return "wpad (" + strings.Join(s.Domains, ", ") + ")"
	case s.File != "":
		return s.File
	}
	return s.URL
}

// pac validates the PAC keys of a path with proxy = "pac" or "wpad".
func (l *loader) pac(key string, ps pathSpec) *PACSource {
	if ps.Proxy == "wpad" {
		if len(l.search) == 0 {
			l.bad(key+".proxy", "path.proxy", "wpad: the first resolver has no search domain to look for wpad.<domain> in: set search = [\"corp.example\"] on it")
		}
		return &PACSource{WPAD: true, Domains: l.search}
	}
	src := &PACSource{}
	switch {
	case ps.PACURL == "" && ps.PACFile == "":
		l.bad(key+".proxy", "path.pac_url", "missing: proxy = \"pac\" needs pac_url (http://, https:// or file://) or pac_file")
	case ps.PACURL != "" && ps.PACFile != "":
		l.bad(key+".pac_file", "path.pac_file", "set pac_url or pac_file, not both")
	case ps.PACFile != "":
		src.File = l.file(ps.PACFile)
		if fi, err := os.Stat(src.File); err != nil {
			l.bad(key+".pac_file", "path.pac_file", "%v", err)
		} else if fi.IsDir() {
			l.bad(key+".pac_file", "path.pac_file", "%s is a directory", src.File)
		}
	default:
		src.URL = ps.PACURL
		u, err := url.Parse(ps.PACURL)
		switch {
		case err != nil:
			l.bad(key+".pac_url", "path.pac_url", "%q is not a URL", ps.PACURL)
		case u.User != nil:
			l.bad(key+".pac_url", "path.pac_url", "%s carries credentials", u.Redacted())
		case u.Scheme == "file":
			if u.Host != "" && u.Host != "localhost" || u.Path == "" {
				l.bad(key+".pac_url", "path.pac_url", "%q: a file:// URL names a local file (file:///etc/reachd/proxy.pac)", ps.PACURL)
			}
		case u.Scheme != "http" && u.Scheme != "https":
			l.bad(key+".pac_url", "path.pac_url", "scheme %q: use http://, https:// or file://", u.Scheme)
		case u.Host == "":
			l.bad(key+".pac_url", "path.pac_url", "%q has no host", ps.PACURL)
		}
	}
	return src
}

// pacKeysUnused rejects PAC keys on a path that does not use them.
func (l *loader) pacKeysUnused(key string, ps pathSpec) {
	if ps.PACURL != "" {
		l.bad(key+".pac_url", "path.pac_url", "only a path with proxy = \"pac\" has a PAC URL")
	}
	if ps.PACFile != "" {
		l.bad(key+".pac_file", "path.pac_file", "only a path with proxy = \"pac\" has a PAC file")
	}
}
