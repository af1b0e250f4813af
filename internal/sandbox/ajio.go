package sandbox

import (
	"net/http"
)

// ajioFlow is Ajio's token flow: POST /authToken with a JSON body
// {username,password}, answered {success,statusCode,result:{accessToken,
// refreshToken}}; a rejected login is success:false, statusCode 401 under
// HTTP 200.
var ajioFlow = flow{
	name:        "ajio",
	refusal:     reply{status: http.StatusOK, body: map[string]any{"success": false, "message": "account blocked"}},
	serverError: reply{status: http.StatusOK, body: map[string]any{"success": false, "statusCode": 503, "message": "Service unavailable, please retry"}},
	unknown:     reply{status: http.StatusOK, body: map[string]any{"ok": true, "data": map[string]string{"token": "x"}}},
}

// readAjio reads an Ajio call, counted for its username.
func (s *Server) readAjio(_ http.ResponseWriter, r *http.Request) call {
	var req struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}
	decodeErr := decodeJSON(r, 1<<16, &req)
	return call{flow: &ajioFlow, seller: req.Username, answer: func() reply {
		switch {
		case decodeErr != nil:
			return reply{status: http.StatusBadRequest, body: map[string]any{"success": false, "statusCode": 400, "message": "bad request body"}}
		case !s.accepts(req.Username, req.Password):
			return rejected(reply{status: http.StatusOK, body: map[string]any{"success": false, "statusCode": 401, "message": "invalid username or password"}})
		}
		access := randomToken("ajio-at-")
		return reply{status: http.StatusOK, token: access, body: map[string]any{
			"success":    true,
			"statusCode": 0,
			"result": map[string]string{
				"accessToken":  access,
				"refreshToken": randomToken("ajio-rt-"),
			},
		}}
	}}
}
