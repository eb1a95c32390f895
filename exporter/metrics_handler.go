package exporter

import (
	"bufio"
	"net/http"

	"github.com/prometheus/common/expfmt"
)

var textFormat = expfmt.NewFormat(expfmt.TypeTextPlain)

// metrics serves /metrics in the text format: the registry's families
// (the daemon's own, Go and process), then the per-probe families written
// straight from the store. It does not compress: at thousands of probes gzip would
// cost more CPU than the scrape itself.
func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	mfs, err := s.registry.Gather()
	if err != nil {
		s.logger.Error("gathering metrics", "err", err)
		http.Error(w, "gathering metrics failed: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", string(textFormat))
	bw := bufio.NewWriterSize(w, 32<<10) // the registry's part: about 10 KB
	enc := expfmt.NewEncoder(bw, textFormat)
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			s.logger.Debug("writing /metrics", "err", err)
			return
		}
	}
	// The per-probe families come in chunks of their own (256 KB): they
	// go to w directly rather than through bw, which would copy them.
	if err := bw.Flush(); err != nil {
		s.logger.Debug("writing /metrics", "err", err)
		return
	}
	if err := s.store.writeProbeFamilies(r.Context(), w); err != nil {
		s.logger.Debug("writing /metrics", "err", err)
	}
}
