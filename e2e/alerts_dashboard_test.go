//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"testing"
)

// alertsCheckDashboard runs every panel query of deploy/grafana/reachd.json against the
// live Prometheus (variables set to match everything). deploy_test.go only parses them;
// this finds what fails at evaluation, such as a many-to-many match, and logs the panels
// that come out empty.
func alertsCheckDashboard(t *testing.T, a *alertsAPI) {
	t.Helper()
	checkDashboard(t, a, "../deploy/grafana/reachd.json")
}

// checkDashboard runs every panel query of one dashboard file against the live Prometheus
// and returns how many queries had data.
func checkDashboard(t *testing.T, a *alertsAPI, file string) (withData int) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			ID      int    `json:"id"`
			Title   string `json:"title"`
			Targets []struct {
				RefID string `json:"refId"`
				Expr  string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	vars := regexp.MustCompile(`\$\{(\w+)(?::[^}]*)?\}|\$(\w+)`)
	builtins := map[string]string{"__rate_interval": "1m", "__interval": "15s", "__range": "1h"}
	queries := 0
	defer func() { t.Logf("%s: %d panel queries evaluated, %d with data", file, queries, withData) }()
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			q := vars.ReplaceAllStringFunc(tg.Expr, func(ref string) string {
				m := vars.FindStringSubmatch(ref)
				if v, ok := builtins[m[1]+m[2]]; ok {
					return v
				}
				return ".*"
			})
			queries++
			n, err := a.instant(q)
			switch {
			case err != nil:
				t.Errorf("dashboard panel %d %q query %s: %v\n%s", p.ID, p.Title, tg.RefID, err, q)
			case n == 0:
				t.Logf("dashboard panel %d %q query %s: no data here", p.ID, p.Title, tg.RefID)
			default:
				withData++
			}
		}
	}
	return withData
}

// instant runs q and returns the number of results, or Prometheus's error.
func (a *alertsAPI) instant(q string) (int, error) {
	resp, err := a.c.Get("http://127.0.0.1:9090/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK || r.Status != "success" {
		return 0, fmt.Errorf("%s: %s", resp.Status, r.Error)
	}
	if r.Data.ResultType == "scalar" {
		return 1, nil
	}
	var rows []json.RawMessage
	if err := json.Unmarshal(r.Data.Result, &rows); err != nil {
		return 0, err
	}
	return len(rows), nil
}
