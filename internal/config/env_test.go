package config_test

import "github.com/eshopbox/token-refresher/internal/config"

// env is a Getenv of kv over the two DSNs every loader needs.
func env(kv map[string]string) config.Getenv {
	base := map[string]string{
		"WMS_DB_DSN": "root@tcp(127.0.0.1:3306)/wms",
		"IE_DB_DSN":  "root@tcp(127.0.0.1:3306)/ie",
	}
	for k, v := range kv {
		base[k] = v
	}
	return func(k string) string { return base[k] }
}
