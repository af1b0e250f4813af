package registry

import "github.com/eshopbox/token-refresher/internal/provider/httptoken"

// SpendsRefreshToken reports whether the entry's call sends the
// connection's refresh token (oauth2_refresh, or an http_token entry that
// maps refresh_token): a server that rotates refresh tokens retires the one
// sent, so a call whose answer is not stored loses the connection's grant.
func (e Entry) SpendsRefreshToken() bool {
	switch e.Kind {
	case KindOAuth2Refresh:
		return true
	case KindHTTPToken:
		if e.Spec == nil {
			return true // unknown: assume the worst
		}
		for _, m := range []map[string]httptoken.Value{e.Spec.Request.Fields, e.Spec.Request.Query} {
			for _, v := range m {
				if v.RefreshToken {
					return true
				}
			}
		}
	}
	return false
}
