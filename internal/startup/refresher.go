package startup

import (
	"errors"

	"github.com/eshopbox/token-refresher/internal/config"
	"github.com/eshopbox/token-refresher/internal/refresher"
)

// optionSettings are the settings that give refresher.New's options.
var optionSettings = map[refresher.Option]string{
	refresher.OptionProviders:     "PROVIDERS_FILE",
	refresher.OptionOutboxKey:     "OUTBOX_KEY",
	refresher.OptionWebhookSecret: "WEBHOOK_SECRET",
}

// NewRefresher is refresher.New over eng with cfg's providers and settings,
// its errors naming the setting behind the option: a *config.SettingError,
// one line.
func NewRefresher(eng refresher.Engines, cfg Refresher) (*refresher.Refresher, error) {
	r, err := refresher.New(eng, cfg.Providers, cfg.Settings)
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
