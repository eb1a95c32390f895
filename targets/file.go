package targets

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strconv"
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
	Vendor   string   `toml:"vendor"`
	Region   string   `toml:"region"`
	Title    string   `toml:"title"`
	Source   string   `toml:"source"`
	Checked  any      `toml:"checked"` // a TOML date; a quoted one is an error of its own
	Defaults Defaults `toml:"defaults"`
	Target   []Spec   `toml:"target"`
}

var (
	vendorRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	regionRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)
)

// ValidVendor reports why v is not a vendor name: a-z, 0-9 and -.
func ValidVendor(v string) error {
	switch {
	case v == "":
		return fmt.Errorf("missing")
	case !vendorRE.MatchString(v):
		return fmt.Errorf("%q must be 1 to 63 characters of a-z, 0-9 and -, starting with a letter or digit", v)
	}
	return nil
}

// ValidRegion reports why r is not a region code: lowercase, such as "jp".
func ValidRegion(r string) error {
	switch {
	case r == "":
		return fmt.Errorf("missing")
	case !regionRE.MatchString(r):
		return fmt.Errorf("%q must be a lowercase region code such as \"jp\"", r)
	}
	return nil
}

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
	if err := ValidVendor(spec.Vendor); err != nil {
		bad("vendor", "%v", err)
	} else if spec.Vendor != wantVendor {
		bad("vendor", "%q must equal the folder name %q", spec.Vendor, wantVendor)
	}
	if err := ValidRegion(spec.Region); err != nil {
		bad("region", "%v", err)
	} else if spec.Region != wantRegion {
		bad("region", "%q must equal the file name %q", spec.Region, wantRegion)
	}
	if spec.Title == "" {
		bad("title", "missing")
	}
	if spec.Source == "" {
		bad("source", "missing")
	}
	var checked time.Time
	switch c := spec.Checked.(type) {
	case nil:
		bad("checked", "missing: the date the list was checked against its source")
	case time.Time:
		checked = c
	case string:
		bad("checked", "%q is a string: write the date without quotes (checked = 2025-12-09)", c)
	default:
		bad("checked", "%v is not a date such as 2025-12-09", c)
	}
	if len(spec.Target) == 0 {
		bad("target", "the file has no [[target]]")
	}
	f := &File{Path: name, Vendor: spec.Vendor, Region: spec.Region, Title: spec.Title, Source: spec.Source, Checked: checked}
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
	if err := JoinSorted(errs...); err != nil {
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

// JoinSorted joins errs, flattening joined ones, in the order of the
// "file:line:" each message starts with: files in order of first
// appearance, lines ascending; messages without a line keep their place
// before their file's numbered ones.
func JoinSorted(errs ...error) error {
	var flat []error
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		flat = append(flat, err)
	}
	for _, e := range errs {
		walk(e)
	}
	fileOrder := map[string]int{}
	type key struct{ file, line int }
	keys := make([]key, len(flat))
	for i, e := range flat {
		file, line := errorPos(e.Error())
		if _, ok := fileOrder[file]; !ok {
			fileOrder[file] = len(fileOrder)
		}
		keys[i] = key{fileOrder[file], line}
	}
	idx := make([]int, len(flat))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		ka, kb := keys[idx[a]], keys[idx[b]]
		if ka.file != kb.file {
			return ka.file < kb.file
		}
		return ka.line < kb.line
	})
	out := make([]error, len(flat))
	for i, j := range idx {
		out[i] = flat[j]
	}
	return errors.Join(out...)
}

// errorPos splits "file:12: message" into the file and the line; a
// message without a line gives line 0.
func errorPos(msg string) (string, int) {
	i := strings.Index(msg, ": ")
	if i < 0 {
		return "", 0
	}
	head := msg[:i]
	if j := strings.LastIndexByte(head, ':'); j >= 0 {
		if n, err := strconv.Atoi(head[j+1:]); err == nil {
			return head[:j], n
		}
	}
	return head, 0
}
