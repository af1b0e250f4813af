package ops

// ServerOptions and ServeWith shorten the server's limits so that the tests
// of the limits run in seconds.
type ServerOptions = serverOptions

var (
	ServeWith     = serve
	NewServerWith = newServer
)
