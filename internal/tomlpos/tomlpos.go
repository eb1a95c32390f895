// Package tomlpos finds the line of a key in a TOML document, so that
// validation errors raised after decoding can name file:line.
//
// BurntSushi/toml reports positions only for syntax errors; the keys of an
// array of tables ([[target]]) share one entry in its metadata. Index scans
// the document once and records the line of every table header and every
// key, with array-of-table elements numbered in order.
package tomlpos

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// Index maps key paths such as "defaults.interval", "target.2.port" or
// "target.2" (the [[target]] header of the third element) to 1-based lines.
type Index struct {
	lines map[string]int
	// first records where a key path without array indexes first appears,
	// for keys reported by toml.MetaData.Undecoded.
	first map[string]int
}

// New scans data. It never fails: lines it cannot read as a header or a
// key are passed over, and a lookup that finds nothing returns 0.
func New(data []byte) *Index {
	ix := &Index{lines: map[string]int{}, first: map[string]int{}}
	counts := map[string]int{} // array-of-tables name -> elements seen
	table := ""                // indexed path of the current table
	plain := ""                // same without indexes
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	inMultiline := ""
	open := 0 // brackets a multi-line array or inline table leaves open
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if inMultiline != "" {
			if strings.Count(line, inMultiline)%2 == 1 {
				inMultiline = ""
			}
			continue
		}
		if open > 0 { // inside a value: "[1, 2]," is no header
			open += depth(line)
			continue
		}
		switch {
		case line == "" || line[0] == '#':
			continue
		case strings.HasPrefix(line, "[["):
			name := headerName(line[2:], "]]")
			counts[name]++
			table = indexed(name, counts)
			plain = name
			ix.set(table, plain, n)
			continue
		case line[0] == '[':
			name := headerName(line[1:], "]")
			table = indexed(name, counts)
			plain = name
			ix.set(table, plain, n)
			continue
		}
		eq := keyEnd(line)
		if eq <= 0 {
			continue
		}
		key := unquote(strings.TrimSpace(line[:eq]))
		ix.set(join(table, key), join(plain, key), n)
		if rest := line[eq+1:]; strings.Count(rest, `"""`)%2 == 1 {
			inMultiline = `"""`
		} else if strings.Count(rest, `'''`)%2 == 1 {
			inMultiline = `'''`
		} else {
			open = max(depth(rest), 0)
		}
	}
	return ix
}

// keyEnd is the index of the first '=' outside a quoted key, or -1.
func keyEnd(line string) int {
	end := -1
	unquoted(line, func(i int, c byte) bool {
		if c == '=' {
			end = i
			return false
		}
		return true
	})
	return end
}

// depth counts the [ and { a value opens minus the ] and } it closes,
// outside strings and before a comment.
func depth(s string) int {
	d := 0
	unquoted(s, func(_ int, c byte) bool {
		switch c {
		case '#':
			return false
		case '[', '{':
			d++
		case ']', '}':
			d--
		}
		return true
	})
	return d
}

// unquoted calls f with each byte of s that is outside a '...' or "..."
// string (with \-escapes in "..."), until f returns false.
func unquoted(s string, f func(i int, c byte) bool) {
	var quote byte
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case quote != 0:
			if c == '\\' && quote == '"' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case !f(i, c):
			return
		}
	}
}

func (ix *Index) set(path, plain string, line int) {
	if _, ok := ix.lines[path]; !ok {
		ix.lines[path] = line
	}
	if _, ok := ix.first[plain]; !ok {
		ix.first[plain] = line
	}
}

// Line returns the line of an indexed key path ("target.2.port"), falling
// back to its table ("target.2") when the key itself is not written (a
// default or a missing required field). It returns 0 when neither exists.
func (ix *Index) Line(path string) int { return nearest(ix.lines, path) }

// FirstLine returns the first line of a key path without array indexes, as
// toml.MetaData.Undecoded reports them ("target.colour"). An inline
// table's keys fall back to the key holding the table.
func (ix *Index) FirstLine(plain string) int { return nearest(ix.first, plain) }

// nearest looks path up, then each shorter prefix of it.
func nearest(lines map[string]int, path string) int {
	for p := path; p != ""; {
		if n, ok := lines[p]; ok {
			return n
		}
		i := strings.LastIndexByte(p, '.')
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return 0
}

// headerName returns the dotted table name of a header, without quotes
// around its parts and without a trailing comment.
func headerName(s, closing string) string {
	if i := strings.Index(s, closing); i >= 0 {
		s = s[:i]
	}
	parts := strings.Split(s, ".")
	for i, p := range parts {
		parts[i] = unquote(strings.TrimSpace(p))
	}
	return strings.Join(parts, ".")
}

// indexed rewrites "a.b" so that every array-of-tables prefix carries the
// index of its current element ("target.2.http").
func indexed(name string, counts map[string]int) string {
	parts := strings.Split(name, ".")
	var out []string
	for i := range parts {
		prefix := strings.Join(parts[:i+1], ".")
		out = append(out, parts[i])
		if c, ok := counts[prefix]; ok && c > 0 {
			out = append(out, strconv.Itoa(c-1))
		}
	}
	return strings.Join(out, ".")
}

func unquote(s string) string {
	if len(s) >= 2 && (s[0] == '"' || s[0] == '\'') && s[len(s)-1] == s[0] {
		return s[1 : len(s)-1]
	}
	return s
}

func join(table, key string) string {
	if table == "" {
		return key
	}
	return table + "." + key
}

// Decode decodes data strictly into v: a syntax or type error comes back
// as "name:line: message", and every key that v has no field for is an
// error of its own ("name:line: unknown key \"colour\""), all joined.
// The Index it returns locates fields for later validation errors.
func Decode(name string, data []byte, v any) (*Index, error) {
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(v)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("%s:%d: %s", name, pe.Position.Line, pe.Message)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	ix := New(data)
	var errs []error
	for _, k := range md.Undecoded() {
		errs = append(errs, fmt.Errorf("%s:%d: unknown key %q", name, ix.FirstLine(k.String()), k.String()))
	}
	// BurntSushi/toml matches keys to fields case-insensitively; every key
	// of reachd's schemas is lowercase, so "SITE" is as unknown as "colour".
	for _, k := range md.Keys() {
		if last := k[len(k)-1]; last != strings.ToLower(last) {
			errs = append(errs, fmt.Errorf("%s:%d: unknown key %q (keys are lowercase)", name, ix.FirstLine(k.String()), k.String()))
		}
	}
	return ix, errors.Join(errs...)
}

// At returns "name:line" for an indexed key path, as Line finds it, or
// just name when the path is not in the document at all.
func (ix *Index) At(name, path string) string {
	if n := ix.Line(path); n > 0 {
		return fmt.Sprintf("%s:%d", name, n)
	}
	return name
}
