// Package sandbox is the project's own marketplace: a real HTTP server that
// speaks, on one base URL, the five token flows the refresher's kinds call,
// one file each:
//
//   - ajio.go: Ajio, POST /authToken with a JSON login;
//   - unicommerce.go: Unicommerce, GET /authToken with the login in the query;
//   - oauth2.go: the OAuth2 refresh_token grant on POST /oauth/token, with
//     refresh-token rotation, its grace and reuse detection;
//   - clientcredentials.go: the OAuth2 client credentials grant on the same
//     endpoint;
//   - shopzone.go: Shopzone, a marketplace that exists only as a declarative
//     http_token entry (ShopzoneEntry).
//
// Every call of every flow passes through one wrapper (serve.go): it counts
// the call, in flight and per seller (stats.go), applies the fault switches
// (faults.go: latency, errors, HTML error pages, garbage, hangs, slow
// answers, 429s) and the answer shapes of real marketplaces (shapes.go), and
// records the token the flow issued or the credentials it refused. A flow
// only reads its request and decides its answer. The control API under
// /_sandbox/ (control.go) sets the switches, registers sellers and OAuth
// clients, and reads the counters. Tests, the demo and the benchmarks talk to
// the sandbox instead of the marketplaces.
package sandbox
