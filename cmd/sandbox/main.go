// Command sandbox runs the project's marketplace stand-in: the Ajio,
// Unicommerce, OAuth2 refresh_token, OAuth2 client credentials and Shopzone
// token flows with fault switches. It never talks to a real marketplace.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/eshopbox/token-refresher/internal/logging"
	"github.com/eshopbox/token-refresher/internal/ops"
	"github.com/eshopbox/token-refresher/internal/sandbox"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	fs := flag.NewFlagSet("sandbox", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", envOr(getenv, "SANDBOX_ADDR", "127.0.0.1:8089"), "listen address (SANDBOX_ADDR)")
	var f sandbox.Faults
	fs.DurationVar(&f.Latency, "latency", 0, "delay before every answer")
	fs.Float64Var(&f.ErrorRate, "error-rate", 0, "share of calls answered HTTP 500")
	fs.Float64Var(&f.HTMLRate, "html-rate", 0, "share of calls answered by an HTML 502 page")
	fs.Float64Var(&f.GarbageRate, "garbage-rate", 0, "share of calls answered HTTP 200 with garbage")
	fs.Float64Var(&f.HangRate, "hang-rate", 0, "share of calls that hang until the caller gives up")
	fs.Float64Var(&f.SlowRate, "slow-rate", 0, "share of calls answered only after --slow-latency")
	fs.DurationVar(&f.SlowLatency, "slow-latency", 15*time.Second, "delay of a slow answer")
	fs.Float64Var(&f.RateLimitRate, "rate-limit-rate", 0, "share of calls answered HTTP 429")
	fs.IntVar(&f.RetryAfterSeconds, "retry-after", 1, "Retry-After seconds of a 429")
	fs.BoolVar(&f.RejectAll, "reject-all", false, "reject every credential")
	fs.BoolVar(&f.Rotate, "rotate", true, "OAuth: issue a new refresh token with every access token")
	fs.DurationVar(&f.RotationGrace, "rotation-grace", time.Minute, "OAuth: how long a rotated-away refresh token is still accepted")
	fs.IntVar(&f.OAuthExpiresIn, "oauth-expires-in", sandbox.DefaultOAuthExpiresIn, "OAuth: expires_in of access tokens, in seconds")
	fs.IntVar(&f.ShopzoneExpiresIn, "shopzone-expires-in", sandbox.DefaultShopzoneExpiresIn, "Shopzone (http_token): seconds from now to a token's expiresAt")
	fs.StringVar(&f.Shape, "shape", "", "answer every call in this shape: "+strings.Join(sandbox.Shapes, ", ")+" (per seller: PUT /_sandbox/faults shape_by)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if f.Shape != "" && !slices.Contains(sandbox.Shapes, f.Shape) {
		fmt.Fprintf(stderr, "sandbox: --shape %q is not one of %s\n", f.Shape, strings.Join(sandbox.Shapes, ", "))
		return 2
	}
	for _, r := range []float64{f.ErrorRate, f.HTMLRate, f.GarbageRate, f.HangRate, f.SlowRate, f.RateLimitRate} {
		if r < 0 || r > 1 {
			fmt.Fprintln(stderr, "sandbox: rates are between 0 and 1")
			return 2
		}
	}
	if f.RotationGrace < 0 || f.OAuthExpiresIn < 1 || f.ShopzoneExpiresIn < 1 {
		fmt.Fprintln(stderr, "sandbox: --rotation-grace must not be negative and --oauth-expires-in and --shopzone-expires-in must be at least 1")
		return 2
	}
	log, err := logging.New(envOr(getenv, "LOG_LEVEL", "info"), envOr(getenv, "LOG_FORMAT", "json"))
	if err != nil {
		fmt.Fprintln(stderr, "sandbox:", err)
		return 2
	}
	defer log.Sync()

	sb := sandbox.New()
	sb.SetFaults(f)
	mux := ops.NewMux(nil, nil)
	mux.Handle("/", sb.Handler())
	bound, done, err := ops.Serve(ctx, *addr, mux, log)
	if err != nil {
		log.Error("cannot listen", zap.String("addr", *addr), zap.Error(err))
		return 1
	}
	log.Info("sandbox marketplace ready", zap.String("base_url", "http://"+bound.String()), zap.Any("faults", f))
	tick := time.NewTicker(30 * time.Second)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if err != nil {
				log.Error("sandbox stopped", zap.Error(err))
				return 1
			}
			return 0
		case <-tick.C:
			log.Info("sandbox stats", zap.Any("stats", sb.Stats()))
		}
	}
}

func envOr(getenv func(string) string, name, def string) string {
	if v := getenv(name); v != "" {
		return v
	}
	return def
}
