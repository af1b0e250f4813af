package demo

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	driver "github.com/go-sql-driver/mysql"
	"github.com/jmoiron/sqlx"

	"github.com/eshopbox/token-refresher/deploy"
	"github.com/eshopbox/token-refresher/internal/mysql"
	"github.com/eshopbox/token-refresher/internal/token"
)

// conn is a demo row with the provider it belongs to.
type conn struct {
	Row
	token.Target
}

// Markers stand for the two database names while deploy's statements are
// sorted by the database they touch (the two may be on two servers).
const (
	wmsMarker = "demo_marker_wms_db"
	ieMarker  = "demo_marker_ie_db"
)

var identifier = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)

// side is one of the two databases.
type side struct {
	setting string // the environment variable naming it
	name    string // database name
	marker  string
	db      *sqlx.DB // connected to the server, no default database
}

// prepare creates the schema where it is missing (deploy's) and replaces the
// demo's connections with the rows of its table (which include the seed's),
// leaving the databases as a fresh demo expects them. It refuses databases that hold connections the demo
// did not make: pointed at production by mistake, it must not touch them.
func prepare(ctx context.Context, wmsDSN, ieDSN string, conns []conn, start time.Time) error {
	wms, err := openSide(ctx, "WMS_DB_DSN", wmsDSN, wmsMarker)
	if err != nil {
		return err
	}
	defer wms.db.Close()
	ie, err := openSide(ctx, "IE_DB_DSN", ieDSN, ieMarker)
	if err != nil {
		return err
	}
	defer ie.db.Close()
	sides := []*side{wms, ie}

	for _, s := range sides {
		if err := s.createSchema(ctx, deploy.Schema(wmsMarker, ieMarker), wms.name, ie.name); err != nil {
			return err
		}
	}

	ids := make([]int64, len(conns))
	for i, c := range conns {
		ids[i] = c.ID
	}
	if err := refuseForeignRows(ctx, wms.db, wms.setting, wms.name+".channels", "connectionId", ids); err != nil {
		return err
	}
	if err := refuseForeignRows(ctx, ie.db, ie.setting, ie.name+".ie_appinstall_connection", "id", ids); err != nil {
		return err
	}

	del := func(s *side, table, col string) error {
		q, args, err := sqlx.In(`DELETE FROM `+s.name+`.`+table+` WHERE `+col+` IN (?)`, ids)
		if err != nil {
			return err
		}
		if _, err := s.db.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("%s: clear the demo's %s rows: %w", s.setting, table, err)
		}
		return nil
	}
	if err := del(wms, "channels", "connectionId"); err != nil {
		return err
	}
	if err := del(ie, "ie_appinstall_connection", "id"); err != nil {
		return err
	}
	for _, c := range conns {
		if _, err := wms.db.ExecContext(ctx, `INSERT INTO `+wms.name+`.channels (connectionId, integrationType, status) VALUES (?, ?, '0')`,
			c.ID, c.IntegrationType); err != nil {
			return fmt.Errorf("WMS_DB_DSN: insert channel %d: %w", c.ID, err)
		}
		var exp any
		if e := c.expiry(start); e != nil {
			exp = *e
		}
		var rt any
		if c.RefreshToken != "" {
			rt = c.RefreshToken
		}
		if _, err := ie.db.ExecContext(ctx, `INSERT INTO `+ie.name+`.ie_appinstall_connection
			(id, inputFields, accessToken, refreshToken, accessTokenExpiryAt, isActive) VALUES (?, ?, NULL, ?, ?, 'active')`,
			c.ID, c.InputFields, rt, exp); err != nil {
			// The error may quote the statement's values: say which row, not why.
			return fmt.Errorf("IE_DB_DSN: insert connection %d failed", c.ID)
		}
	}
	return nil
}

// openSide connects to the server of a DSN without selecting its database,
// which may not exist yet. Errors name the setting, never the DSN (it may hold
// a password).
func openSide(ctx context.Context, setting, dsn, marker string) (*side, error) {
	norm, err := mysql.ParseDSN(dsn, time.UTC)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", setting, err)
	}
	cfg, err := driver.ParseDSN(norm)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", setting, err)
	}
	if !identifier.MatchString(cfg.DBName) {
		return nil, fmt.Errorf("%s: the demo wants a plain database name (letters, digits, _)", setting)
	}
	name := cfg.DBName
	cfg.DBName = ""
	db, err := sqlx.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", setting, err)
	}
	db.SetMaxOpenConns(2)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("%s: cannot reach the database server: %w", setting, err)
	}
	return &side{setting: setting, name: name, marker: marker, db: db}, nil
}

func (s *side) resolve(st, wmsName, ieName string) string {
	return strings.NewReplacer(wmsMarker, wmsName, ieMarker, ieName).Replace(st)
}

// createSchema runs deploy's schema statements that touch this side's
// database. Every statement is IF NOT EXISTS; CREATE DATABASE is skipped for
// an existing database, so an account without that privilege still works.
func (s *side) createSchema(ctx context.Context, schema []string, wmsName, ieName string) error {
	var exists int
	if err := s.db.GetContext(ctx, &exists,
		`SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?`, s.name); err != nil {
		return fmt.Errorf("%s: look for database %s: %w", s.setting, s.name, err)
	}
	for _, st := range schema {
		if !strings.Contains(st, s.marker) {
			continue
		}
		if exists > 0 && strings.HasPrefix(strings.ToUpper(strings.TrimSpace(st)), "CREATE DATABASE") {
			continue
		}
		if _, err := s.db.ExecContext(ctx, s.resolve(st, wmsName, ieName)); err != nil {
			return fmt.Errorf("%s: create the schema: %w", s.setting, err)
		}
	}
	return nil
}

// refuseForeignRows fails when table holds a row whose id is not one of the
// demo's.
func refuseForeignRows(ctx context.Context, db *sqlx.DB, setting, table, col string, ids []int64) error {
	q, args, err := sqlx.In(`SELECT `+col+` FROM `+table+` WHERE `+col+` NOT IN (?) LIMIT 1`, ids)
	if err != nil {
		return err
	}
	var foreign []int64
	if err := db.SelectContext(ctx, &foreign, q, args...); err != nil {
		return fmt.Errorf("%s: read %s: %w", setting, table, err)
	}
	if len(foreign) > 0 {
		return fmt.Errorf("%s: %s holds connection %d, which the demo did not make; "+
			"the demo replaces its own rows and refuses to run beside others: point it at empty or demo databases",
			setting, table, foreign[0])
	}
	return nil
}
