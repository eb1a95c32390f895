package main

import (
	"fmt"
	"net/url"
	"strings"
)

// routeOptions are --web.route-prefix and --web.external-url, as
// Prometheus has them, for running behind a reverse proxy.
type routeOptions struct {
	prefix, externalURL string
}

// resolve returns the route prefix ("" for the root, else "/x" without a
// trailing slash) and the external path redirects point at. As in
// Prometheus, the prefix defaults to the external URL's path.
func (o routeOptions) resolve() (prefix, external string, err error) {
	if o.externalURL != "" {
		u, err := url.Parse(o.externalURL)
		if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
			return "", "", fmt.Errorf("--web.external-url %q is not an http:// or https:// URL", o.externalURL)
		}
		external = strings.TrimSuffix(u.Path, "/")
	}
	prefix = external
	if o.prefix != "" {
		if !strings.HasPrefix(o.prefix, "/") {
			return "", "", fmt.Errorf("--web.route-prefix %q must start with /", o.prefix)
		}
		prefix = strings.TrimSuffix(o.prefix, "/")
	}
	if o.externalURL == "" {
		external = prefix
	}
	return prefix, external, nil
}
