package sandbox

import "net/http"

// flow is one marketplace's token flow as the wrapper serves it.
type flow struct {
	// name counts the flow's calls in Stats.ByFlow.
	name string
	// refusal, serverError and unknown are the flow's own words for the
	// shapes ShapeRefusalIn200, ShapeServerErrorIn200 and ShapeUnknown.
	refusal, serverError, unknown reply
}

// call is one token request as its flow read it.
type call struct {
	flow *flow
	// seller is whom the call is for: Calls, ShapeBy, IssuedTo and
	// Generations know it by this name (a username; OAuth refresh: the
	// refresh token's subject; client credentials: the client id). ""
	// when the request names nobody the sandbox knows.
	seller string
	// answer decides the reply once the faults and shapes let the call
	// through. It runs with s.mu held, so that what it changes (an OAuth
	// rotation, a revoked family) and the token it issues are one step.
	answer func() reply
}

// reply is a flow's answer to a call.
type reply struct {
	status int
	header map[string]string
	body   map[string]any
	// token is the access token body carries, issued to the call's seller;
	// "" when the reply issues none. Only a reply with a token is written
	// in the success shapes (form, text_plain, expires_in...).
	token string
	// rejected is set when the flow refused the credentials.
	rejected bool
}

// reader reads a token request: which flow it is for, whom for, and how to
// answer it. A request it cannot read is still a call, answered by the flow
// (a 400 in the flow's words).
type reader func(w http.ResponseWriter, r *http.Request) call

// serve is the one wrapper every flow's calls pass through, the same way for
// every flow: it counts the call (Calls, ByFlow, per seller, in flight, the
// peaks) until it is answered, applies latency and the faults, answers in
// the seller's shape when that shape is not a token, and else lets the flow
// decide, counts the token it issued (noteIssued) or the credentials it
// refused, and writes the reply in the seller's shape.
func (s *Server) serve(read reader) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c := read(w, r)
		defer s.track(c.flow.name, c.seller)()
		if !s.applyFaults(w, r) {
			return
		}
		shape := s.shapeFor(c.seller)
		if s.failShape(w, r, c.flow, shape) {
			return
		}
		writeReply(w, shape, s.decide(c))
	}
}

// decide runs a call's answer and records what it did, in one step.
func (s *Server) decide(c call) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	rep := c.answer()
	if rep.token != "" {
		s.noteIssued(rep.token, c.seller)
	}
	if rep.rejected {
		s.stats.Rejected++
	}
	return rep
}

// writeReply writes a reply, a token in the seller's shape.
func writeReply(w http.ResponseWriter, shape string, rep reply) {
	for k, v := range rep.header {
		w.Header().Set(k, v)
	}
	if rep.token != "" {
		writeToken(w, shape, rep.body)
		return
	}
	writeJSON(w, rep.status, rep.body)
}

// rejected marks a reply as a refusal of the credentials.
func rejected(rep reply) reply {
	rep.rejected = true
	return rep
}
