package startup

import (
	"errors"

	"github.com/eshopbox/token-refresher/internal/config"
	"github.com/eshopbox/token-refresher/internal/worker"
)

// optionSettings are the settings that give worker.New's options.
var optionSettings = map[worker.Option]string{
	worker.OptionProviders:     "PROVIDERS_FILE",
	worker.OptionOutboxKey:     "OUTBOX_KEY",
	worker.OptionWebhookSecret: "WEBHOOK_SECRET",
}

// NewRefresher is worker.New over eng with cfg's providers and settings,
// its errors naming the setting behind the option: a *config.SettingError,
// one line.
func NewRefresher(eng worker.Engines, cfg Refresher) (*worker.Worker, error) {
	r, err := worker.New(eng, cfg.Providers, cfg.Settings)
	return r, Named(err)
}

// Named is err with the setting behind a package's option named: a
// worker.OptionError becomes the *config.SettingError of its setting;
// any other error is returned as it is.
func Named(err error) error {
	var oe *worker.OptionError
	if errors.As(err, &oe) {
		if name, ok := optionSettings[oe.Option]; ok {
			return &config.SettingError{Name: name, Err: oe.Err}
		}
	}
	return err
}
