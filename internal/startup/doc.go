// Package startup is where the binaries turn their settings into the
// packages' options: internal/config reads the environment into plain
// structs; startup converts them (the providers file into registry entries,
// the database settings into mysql.Options, the refresher's into
// worker.Settings, REDIS_URL's client into the queue) and names the
// setting behind any error a package returns, so only cmd/ and this package
// speak of environment variables. cmd/scanner, cmd/refresher and
// cmd/dashboard use it; the deploy tests use it to check that the shipped
// environments would start.
package startup
