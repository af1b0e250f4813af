// Package deploy embeds the dev/test schema and seed rows, so tests, the demo
// and the benchmarks create exactly the tables that docker-compose loads.
package deploy

import (
	_ "embed"
	"strings"
)

// The production database names used in the SQL files.
const (
	WMSDatabase = "eshopbox_wms_production"
	IEDatabase  = "integration_engine_prod"
)

//go:embed mysql/01-schema.sql
var schema string

//go:embed mysql/02-seed.sql
var seed string

//go:embed mysql/03-indexes.sql
var indexes string

// Schema returns the schema's statements with the two database names
// replaced (pass the production names to keep them).
func Schema(wmsDB, ieDB string) []string { return statements(schema, wmsDB, ieDB) }

// Seed returns the seed rows' statements, database names replaced.
func Seed(wmsDB, ieDB string) []string { return statements(seed, wmsDB, ieDB) }

// Indexes returns the optional indexes' statements (03-indexes.sql),
// database names replaced.
func Indexes(wmsDB, ieDB string) []string { return statements(indexes, wmsDB, ieDB) }

// statements splits a file on semicolons: the files keep semicolons out of
// their comments and literals.
func statements(sql, wmsDB, ieDB string) []string {
	sql = strings.NewReplacer(WMSDatabase, wmsDB, IEDatabase, ieDB).Replace(sql)
	var out []string
	for _, st := range strings.Split(sql, ";") {
		var lines []string
		for _, l := range strings.Split(st, "\n") {
			if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "--") {
				lines = append(lines, l)
			}
		}
		if len(lines) > 0 {
			out = append(out, strings.Join(lines, "\n"))
		}
	}
	return out
}

// DeclarativeExample is providers.declarative.example.yaml: Ajio and
// Unicommerce as http_token entries (the conformance tests run them).
//
//go:embed providers.declarative.example.yaml
var DeclarativeExample []byte
