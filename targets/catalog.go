package targets

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// The embedded vendor catalog: <vendor>/<region>.toml.
//
//go:embed */*.toml
var embedded embed.FS

// Catalog is the set of target files a config can pick with [[use]].
type Catalog struct {
	files map[string]*File // by "vendor/region"
}

// Embedded loads the catalog compiled into the binary.
func Embedded() (*Catalog, error) { return Load("") }

// Load loads the embedded catalog, then the target files under dir (same
// <vendor>/<region>.toml layout) when dir is not empty: a file on disk
// replaces the embedded file of the same vendor and region, and new files
// extend the catalog. Every problem in every file is reported at once.
func Load(dir string) (*Catalog, error) {
	c := &Catalog{files: map[string]*File{}}
	errs := []error{c.addFS(embedded, ".", "targets")}
	if dir != "" {
		if _, err := os.Stat(dir); err != nil {
			errs = append(errs, fmt.Errorf("catalog_dir: %w", err))
		} else {
			errs = append(errs, c.addFS(os.DirFS(dir), ".", dir))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Catalog) addFS(fsys fs.FS, root, display string) error {
	names, err := fs.Glob(fsys, path.Join(root, "*", "*.toml"))
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range names {
		data, err := fs.ReadFile(fsys, n)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		f, err := ParseFile(filepath.Join(display, filepath.FromSlash(n)), data)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c.files[f.Vendor+"/"+f.Region] = f
	}
	return errors.Join(errs...)
}

// Files returns every file, sorted by vendor and region.
func (c *Catalog) Files() []*File {
	out := make([]*File, 0, len(c.files))
	for _, f := range c.files {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Vendor != out[j].Vendor {
			return out[i].Vendor < out[j].Vendor
		}
		return out[i].Region < out[j].Region
	})
	return out
}

// File returns the file of vendor and region, or nil.
func (c *Catalog) File(vendor, region string) *File { return c.files[vendor+"/"+region] }

// Regions returns the regions the catalog has for vendor, sorted; none
// when the vendor is unknown.
func (c *Catalog) Regions(vendor string) []string {
	var out []string
	for _, f := range c.Files() {
		if f.Vendor == vendor {
			out = append(out, f.Region)
		}
	}
	return out
}

// Vendors returns the vendors in the catalog, sorted, as one string for
// error messages.
func (c *Catalog) Vendors() string {
	var out []string
	for _, f := range c.Files() {
		if len(out) == 0 || out[len(out)-1] != f.Vendor {
			out = append(out, f.Vendor)
		}
	}
	return strings.Join(out, ", ")
}
