package exporter

import (
	"encoding/json"
	"testing"

	"github.com/reachd/reachd/probe"
)

// TestDNSReportSource: each dns entry of the JSON report says where its
// answer came from, the name the search list made of a short host, and a
// stale hosts pin.
func TestDNSReportSource(t *testing.T) {
	r := okResult(fake("a"))
	r.DNS = []probe.DNSResult{
		{Resolver: "system", QType: "A", Success: true, Rcode: "NOERROR", Answers: []string{"10.1.2.3"}, Source: "hosts",
			Warning: "the hosts file /etc/hosts pins a to 10.1.2.3, but DNS (10.0.0.53:53) answers 10.1.2.4: a stale pin?"},
		{Resolver: "system", QType: "AAAA", Success: true, Rcode: "NOERROR", Source: "10.0.0.53:53", Name: "a.corp.example."},
	}
	data, err := json.Marshal(NewDNSReports(&r))
	if err != nil {
		t.Fatal(err)
	}
	var doc []map[string]any
	if err := json.Unmarshal(data, &doc); err != nil || len(doc) != 2 {
		t.Fatalf("%s: %v", data, err)
	}
	if doc[0]["source"] != "hosts" || doc[0]["warning"] != r.DNS[0].Warning || doc[0]["name"] != nil {
		t.Errorf("hosts entry %v", doc[0])
	}
	if doc[1]["source"] != "10.0.0.53:53" || doc[1]["name"] != "a.corp.example." || doc[1]["warning"] != nil {
		t.Errorf("DNS entry %v", doc[1])
	}
}
