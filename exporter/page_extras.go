package exporter

import (
	"strconv"

	"github.com/reachd/reachd/probe"
)

// writeTraceFacts writes the path trace panel of an expanded row: the
// verdict, then one line per hop; or why this system cannot trace.
func writeTraceFacts(w *pageWriter, t *probe.TraceInfo) {
	if t == nil {
		return
	}
	w.WriteString(`<dl class="facts trace"><dt>path trace</dt>`)
	if t.Unsupported != "" {
		w.WriteString(`<dd class="muted">`)
		w.esc(t.Unsupported)
		w.WriteString("</dd></dl>\n")
		return
	}
	w.WriteString(`<dd class="warn">`)
	w.esc(t.Verdict)
	w.WriteString(` <span class="muted">to `)
	w.esc(t.Target.String())
	w.WriteString(", " + t.Start.UTC().Format("15:04:05") + " UTC</span></dd>")
	w.WriteString(`<dt>hops</dt><dd class="mono">`)
	for i, h := range t.Hops {
		if i > 0 {
			w.WriteString("<br>")
		}
		w.esc(h.String())
	}
	w.WriteString("</dd></dl>\n")
}

// writeRevocationFacts writes the revocation panel: each URL of the
// verified chain and whether it answered over the probe's path.
func writeRevocationFacts(w *pageWriter, checks []probe.RevocationCheck) {
	if len(checks) == 0 {
		return
	}
	w.WriteString(`<dl class="facts revocation">`)
	for _, c := range checks {
		w.WriteString(`<dt>`)
		w.esc(c.Kind)
		w.WriteString(`</dt><dd class="mono">`)
		if c.Reachable {
			w.WriteString(`<span class="yes">✓</span> `)
		} else {
			w.WriteString(`<span class="no">✗</span> `)
		}
		w.esc(c.URL)
		if c.Status != 0 {
			w.WriteString(` <span class="muted">HTTP ` + strconv.Itoa(c.Status) + `</span>`)
		}
		if c.Detail != "" {
			w.WriteString(` <span class="warn">`)
			w.esc(c.Detail)
			w.WriteString(`</span>`)
		}
		w.WriteString("</dd>")
	}
	w.WriteString("</dl>\n")
}
