package sandbox

import "net/http"

// unicommerceFlow is Unicommerce's token flow: GET /authToken with
// ?username=..&password=.., answered {status:SUCCESS,accessToken}; a
// rejected login is status FAILED under HTTP 200.
var unicommerceFlow = flow{
	name:    "unicommerce",
	refusal: reply{status: http.StatusOK, body: map[string]any{"status": "INVALID_CREDENTIALS"}},
	// Unicommerce has no word for a server failure under HTTP 200.
	serverError: reply{status: http.StatusServiceUnavailable, body: map[string]any{"status": "ERROR"}},
	unknown:     reply{status: http.StatusOK, body: map[string]any{"status": "PENDING"}},
}

// readUnicommerce reads a Unicommerce call, counted for its username.
func (s *Server) readUnicommerce(_ http.ResponseWriter, r *http.Request) call {
	q := r.URL.Query()
	username, password := q.Get("username"), q.Get("password")
	return call{flow: &unicommerceFlow, seller: username, answer: func() reply {
		switch {
		case username == "" || password == "":
			return reply{status: http.StatusBadRequest, body: map[string]any{"status": "FAILED", "message": "username and password are required"}}
		case !s.accepts(username, password):
			return rejected(reply{status: http.StatusOK, body: map[string]any{"status": "FAILED", "message": "invalid username or password"}})
		}
		access := randomToken("uc-at-")
		return reply{status: http.StatusOK, token: access, body: map[string]any{"status": "SUCCESS", "accessToken": access}}
	}}
}
