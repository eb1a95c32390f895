package exporter

import (
	"embed"
	"html/template"
	"io"
	"time"
)

//go:embed templates/*.html
var templatesFS embed.FS

var statusTemplate = template.Must(template.ParseFS(templatesFS, "templates/status.html"))

type pageData struct {
	Site, Version            string
	Up, Down, Pending, Total int
	ReloadOK                 bool
	ReloadTime, ReloadErr    string
	Groups                   []pageGroup
}

type pageGroup struct {
	Vendor, Region string
	Rows           []pageRow
}

type pageRow struct {
	Name, Address, Path, State, Class, Duration string
	Stage, Reason, Detail, Hint, Since          string
	History                                     []HistoryPoint
}

// renderStatus writes the status page: one row per target x path, grouped
// by vendor and region, in the store's key order.
func renderStatus(w io.Writer, store *Store, st StateView, version string) error {
	d := pageData{Site: st.Site, Version: version, ReloadOK: st.ReloadOK, ReloadErr: st.ReloadErr, ReloadTime: st.ReloadSuccess.Format(time.RFC3339)}
	store.Range(func(e *Entry) {
		t := e.Target
		if n := len(d.Groups); n == 0 || d.Groups[n-1].Vendor != t.Vendor || d.Groups[n-1].Region != t.Region {
			d.Groups = append(d.Groups, pageGroup{Vendor: t.Vendor, Region: t.Region})
		}
		row := pageRow{Name: t.Name, Address: t.Address(), Path: e.Path, State: "pending", Class: "pending",
			History: append([]HistoryPoint(nil), e.History...)}
		d.Total++
		switch r := e.Last; {
		case r == nil:
			d.Pending++
		case r.Success():
			d.Up++
			row.State, row.Class = "up", "ok"
		default:
			d.Down++
			row.State, row.Class = "down", "bad"
			row.Stage, row.Reason, row.Hint = string(r.Err.Stage), string(r.Err.Reason), r.Err.Reason.Hint()
			if r.Err.Err != nil {
				row.Detail = r.Err.Err.Error()
			}
		}
		if r := e.Last; r != nil {
			row.Duration = r.Duration.Round(time.Millisecond).String()
			row.Since = e.Since.Format(time.RFC3339)
		}
		g := &d.Groups[len(d.Groups)-1]
		g.Rows = append(g.Rows, row)
	})
	return statusTemplate.Execute(w, d)
}
