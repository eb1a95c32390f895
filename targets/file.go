package targets

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/reachd/reachd/internal/tomlpos"
)

// File is one validated target file: the targets of one vendor in one region.
type File struct {
	Path    string // where it was read from: "targets/<vendor>/<region>.toml" or a path on disk
	Vendor  string
	Region  string
	Title   string
	Source  string
	Checked time.Time
	Targets []Target
}

type fileSpec struct {
	Vendor   string    `toml:"vendor"`
	Region   string    `toml:"region"`
	Title    string    `toml:"title"`
	Source   string    `toml:"source"`
	Checked  time.Time `toml:"checked"`
	Defaults Defaults  `toml:"defaults"`
	Target   []Spec    `toml:"target"`
}

var (
	vendorRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	regionRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)
)

// ParseFile decodes and validates a target file. name is used in errors
// and, as <vendor>/<region>.toml, must agree with the vendor and region
// keys. Every problem is reported, each with name:line.
func ParseFile(name string, data []byte) (*File, error) {
	var spec fileSpec
	ix, err := tomlpos.Decode(name, data, &spec)
	if ix == nil {
		return nil, err
	}
	errs := []error{err}
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s: %s", ix.At(name, key), key, fmt.Sprintf(format, args...)))
	}
	wantRegion := strings.TrimSuffix(path.Base(name), ".toml")
	wantVendor := path.Base(path.Dir(name))
	switch {
	case spec.Vendor == "":
		bad("vendor", "missing")
	case !vendorRE.MatchString(spec.Vendor):
		bad("vendor", "%q must be a-z, 0-9 and -", spec.Vendor)
	case spec.Vendor != wantVendor:
		bad("vendor", "%q must equal the folder name %q", spec.Vendor, wantVendor)
	}
	switch {
	case spec.Region == "":
		bad("region", "missing")
	case !regionRE.MatchString(spec.Region):
		bad("region", "%q must be a lowercase region code such as \"jp\"", spec.Region)
	case spec.Region != wantRegion:
		bad("region", "%q must equal the file name %q", spec.Region, wantRegion)
	}
	if spec.Title == "" {
		bad("title", "missing")
	}
	if spec.Source == "" {
		bad("source", "missing")
	}
	if spec.Checked.IsZero() {
		bad("checked", "missing: the date the list was checked against its source")
	}
	if len(spec.Target) == 0 {
		bad("target", "the file has no [[target]]")
	}
	f := &File{Path: name, Vendor: spec.Vendor, Region: spec.Region, Title: spec.Title, Source: spec.Source, Checked: spec.Checked}
	seen := map[string]bool{}
	for i, s := range spec.Target {
		at := func(field string) string { return ix.At(name, FieldPath("target", i, field)) }
		if s.Vendor != "" || s.Region != "" {
			errs = append(errs, fmt.Errorf("%s: target %q: vendor and region belong at the top of a target file", at(""), s.Name))
		}
		if s.Purpose == "" {
			errs = append(errs, fmt.Errorf("%s: target %q: purpose: missing", at(""), s.Name))
		}
		t, terrs := s.Resolve(spec.Defaults, spec.Vendor, spec.Region, at)
		errs = append(errs, terrs...)
		if s.Name != "" && seen[s.Name] {
			errs = append(errs, fmt.Errorf("%s: target %q: name: duplicate in this file", at(""), s.Name))
		}
		seen[s.Name] = true
		f.Targets = append(f.Targets, t)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return f, nil
}

// FieldPath is the tomlpos path of a field of the i-th element of an
// array of tables ("target.3.port"); field "" is the element's header.
func FieldPath(table string, i int, field string) string {
	p := fmt.Sprintf("%s.%d", table, i)
	if field != "" {
		p += "." + field
	}
	return p
}
