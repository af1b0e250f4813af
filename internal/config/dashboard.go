package config

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/hibiken/asynq"

	"github.com/eshopbox/token-refresher/internal/redisconn"
)

// Dashboard holds the settings of the standalone dashboard (cmd/dashboard),
// asynqmon in its own container.
type Dashboard struct {
	Redis     asynq.RedisConnOpt // REDIS_URL
	HTTPAddr  string             // HTTP_ADDR
	User      string             // DASHBOARD_USER
	Password  string             // DASHBOARD_PASSWORD
	ReadOnly  bool               // DASHBOARD_READ_ONLY
	LogLevel  string             // LOG_LEVEL
	LogFormat string             // LOG_FORMAT
}

// LoadDashboard reads the standalone dashboard's settings. Unlike the
// refresher's embedded one it cannot be switched off: user and password are
// required.
func LoadDashboard(get Getenv) (Dashboard, error) {
	r := &reader{bin: BinDashboard, get: get}
	var d Dashboard
	opt, err := redisconn.ParseURL(r.str("REDIS_URL"))
	if err != nil {
		r.fail("REDIS_URL", err)
	}
	d.Redis = opt
	d.HTTPAddr = r.str("HTTP_ADDR")
	d.User = r.str("DASHBOARD_USER")
	d.Password = r.str("DASHBOARD_PASSWORD")
	if d.User == "" || d.Password == "" {
		r.fail("DASHBOARD_PASSWORD", errors.New("DASHBOARD_USER and DASHBOARD_PASSWORD are required (asynqmon has no auth of its own)"))
	}
	r.dashboardPassword(d.Password)
	d.ReadOnly = r.boolean("DASHBOARD_READ_ONLY")
	d.LogLevel = r.str("LOG_LEVEL")
	d.LogFormat = r.str("LOG_FORMAT")
	return d, r.err
}

// MinDashboardPassword is the shortest DASHBOARD_PASSWORD accepted, in
// characters. The dashboard also throttles failed logins per client
// (internal/dashboard), but a short password falls to a patient guesser.
const MinDashboardPassword = 12

// dashboardPassword refuses a password shorter than MinDashboardPassword;
// the error never shows the password, only how long it must be.
func (r *reader) dashboardPassword(p string) {
	if p != "" && utf8.RuneCountInString(p) < MinDashboardPassword {
		r.fail("DASHBOARD_PASSWORD", fmt.Errorf("shorter than %d characters", MinDashboardPassword))
	}
}
