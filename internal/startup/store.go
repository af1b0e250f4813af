package startup

import (
	"context"
	"errors"
	"fmt"

	"github.com/eshopbox/token-refresher/internal/mysql"
)

// storeSettings name the setting of each database mysql.Open opens.
var storeSettings = map[string]string{mysql.WMS: "WMS_DB_DSN", mysql.IE: "IE_DB_DSN"}

// OpenStore is mysql.Open whose error names the setting of the database
// that failed (WMS_DB_DSN or IE_DB_DSN), as one line: "WMS_DB_DSN: cannot
// reach the database: …".
func OpenStore(ctx context.Context, wmsDSN, ieDSN string, opts mysql.Options) (*mysql.Store, error) {
	store, err := mysql.Open(ctx, wmsDSN, ieDSN, opts)
	var oe *mysql.OpenError
	if errors.As(err, &oe) {
		return nil, fmt.Errorf("%s: %w", storeSettings[oe.Database], oe.Err)
	}
	return store, err
}
