package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/eshopbox/token-refresher/internal/config"
	"github.com/eshopbox/token-refresher/internal/mysql"
	"github.com/eshopbox/token-refresher/internal/provider"
	"github.com/eshopbox/token-refresher/internal/registry"
	"github.com/eshopbox/token-refresher/internal/token"
)

// tryStore is what a try reads; it never writes.
type tryStore interface {
	Load(ctx context.Context, id int64) (token.Connection, error)
	IntegrationTypes(ctx context.Context, id int64) ([]string, error)
}

var _ tryStore = (*mysql.Store)(nil)

// try calls the marketplace once for connection id, as a refresh would, and
// prints the verdict (stored, permanent, transient or unusable, with the
// reason) and, for a token, its expiry and whether a refresh token came
// with it. It writes nothing to MySQL or Redis and never prints a token or
// a credential. A call that would send the stored refresh token is refused
// unless spend is set: a server that rotates refresh tokens would retire
// it, and the successor would be dropped with the answer. It returns the
// exit code: 0 stored, 1 any other verdict, 2 a connection or setting
// that cannot be tried.
func try(ctx context.Context, store tryStore, entries []registry.Entry, id int64, spend bool, getenv func(string) string, out io.Writer) int {
	types, err := store.IntegrationTypes(ctx, id)
	if err != nil {
		fmt.Fprintln(out, "refresher --try:", err)
		return 2
	}
	var entry *registry.Entry
	for i := range entries {
		for _, t := range types {
			if entries[i].IntegrationType == t {
				entry = &entries[i]
			}
		}
	}
	if entry == nil {
		fmt.Fprintf(out, "refresher --try: connection %d has no active channel of a configured integration type (its types: %s)\n",
			id, strings.Join(types, ", "))
		return 2
	}
	label := fmt.Sprintf("connection %d (%s, integration type %s)", id, entry.Kind, entry.IntegrationType)
	if entry.SpendsRefreshToken() && !spend {
		fmt.Fprintf(out, "refresher --try: %s: not tried: the call sends the stored refresh token, which a rotating server retires, and --try stores nothing; add --spend-refresh-token to try anyway\n", label)
		return 2
	}
	c, err := store.Load(ctx, id)
	if errors.Is(err, token.ErrNotFound) {
		fmt.Fprintf(out, "refresher --try: %s: not found or not active\n", label)
		return 2
	}
	if err != nil {
		fmt.Fprintln(out, "refresher --try:", err)
		return 2
	}
	c.IntegrationType = entry.IntegrationType
	client, err := registry.Build(*entry, provider.NewHTTPClient(1), getenv)
	if err != nil {
		fmt.Fprintln(out, "refresher --try:", &config.SettingError{Name: "PROVIDERS_FILE", Err: err})
		return 2
	}
	start := time.Now()
	tok, err := client.Refresh(ctx, c)
	if err != nil {
		verdict := token.ClassOf(err)
		var f *token.Failure
		if errors.As(err, &f) {
			err = errors.New(f.Reason)
		}
		fmt.Fprintf(out, "%s: %s: %v; nothing was written\n", label, verdict, err)
		return 1
	}
	rt := "no refresh token (the stored one would be kept)"
	if tok.RefreshToken != "" {
		rt = "a refresh token"
	}
	fmt.Fprintf(out, "%s: stored: a token expiring %s (in %s), with %s; nothing was written (--try)\n",
		label, tok.ExpiresAt.UTC().Format(time.RFC3339), tok.ExpiresAt.Sub(start).Round(time.Second), rt)
	return 0
}
