package startup

import (
	"errors"

	"github.com/eshopbox/token-refresher/internal/breaker"
	"github.com/eshopbox/token-refresher/internal/config"
	"github.com/eshopbox/token-refresher/internal/refresher"
	"github.com/eshopbox/token-refresher/internal/registry"
)

// RefresherSettings are the refresher's options from its environment;
// getenv reads the providers' client_secret_env.
func RefresherSettings(cfg config.Refresher, getenv func(string) string) refresher.Settings {
	w := cfg.Webhooks
	return refresher.Settings{
		Queue: cfg.Queue, QueueShards: cfg.QueueShards, Concurrency: cfg.Concurrency, TaskTimeout: cfg.TaskTimeout,
		RetryBaseDelay: cfg.RetryBaseDelay, RetryMaxDelay: cfg.RetryMaxDelay, RetryCheck: cfg.RetryCheck,
		DrainTimeout: cfg.DrainTimeout,
		Breaker:      breaker.Config{Failures: cfg.BreakerFailures, Cooldown: cfg.BreakerCooldown},
		Webhooks: refresher.Webhooks{Endpoints: w.Endpoints, Secret: w.Secret, Events: w.Events,
			Concurrency: w.Concurrency, Timeout: w.Timeout, MaxRetry: w.MaxRetry},
		OutboxKey:      cfg.OutboxKey,
		FingerprintKey: cfg.FingerprintKey,
		Getenv:         getenv,
	}
}

// optionSettings are the settings that give refresher.New's options.
var optionSettings = map[refresher.Option]string{
	refresher.OptionProviders:     "PROVIDERS_FILE",
	refresher.OptionOutboxKey:     "OUTBOX_KEY",
	refresher.OptionWebhookSecret: "WEBHOOK_SECRET",
}

// NewRefresher is refresher.New with its errors naming the setting behind
// the option: a *config.SettingError, one line.
func NewRefresher(eng refresher.Engines, entries []registry.Entry, s refresher.Settings) (*refresher.Refresher, error) {
	r, err := refresher.New(eng, entries, s)
	return r, Named(err)
}

// Named is err with the setting behind a package's option named: a
// refresher.OptionError becomes the *config.SettingError of its setting;
// any other error is returned as it is.
func Named(err error) error {
	var oe *refresher.OptionError
	if errors.As(err, &oe) {
		if name, ok := optionSettings[oe.Option]; ok {
			return &config.SettingError{Name: name, Err: oe.Err}
		}
	}
	return err
}
