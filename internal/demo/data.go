package demo

import (
	"fmt"
	"strings"
	"time"

	"github.com/eshopbox/token-refresher/internal/registry"
	"github.com/eshopbox/token-refresher/internal/sandbox"
)

// Timing is how fast the demo's tokens age. The demo's own provider entries
// use short lifetimes so a newcomer sees waves of refreshes within minutes.
type Timing struct {
	// TokenTTL is the lifetime of a token the demo's providers obtain.
	TokenTTL time.Duration
	// RefreshBefore is how long before expiry a token is due.
	RefreshBefore time.Duration
	// SecondWave is when the connections seeded "due soon" come due.
	SecondWave time.Duration
	// ScanInterval is the time between scans (at most RefreshBefore/2).
	ScanInterval time.Duration
}

// DefaultTiming: tokens live 3 minutes and are renewed in their last one, so
// the seeded due-now connections are refreshed at once, the due-soon ones a
// minute later, and every refreshed token comes round again two minutes
// after its refresh.
func DefaultTiming() Timing {
	return Timing{TokenTTL: 3 * time.Minute, RefreshBefore: time.Minute, SecondWave: time.Minute, ScanInterval: 5 * time.Second}
}

func (t Timing) validate() error {
	switch {
	case t.TokenTTL <= 0 || t.RefreshBefore <= 0 || t.SecondWave <= 0 || t.ScanInterval <= 0:
		return fmt.Errorf("demo timing: every duration must be positive (%+v)", t)
	case t.RefreshBefore >= t.TokenTTL:
		return fmt.Errorf("demo timing: refresh before (%s) must be shorter than the token lifetime (%s)", t.RefreshBefore, t.TokenTTL)
	case t.ScanInterval > t.RefreshBefore/2:
		return fmt.Errorf("demo timing: scan interval (%s) must be at most half of refresh before (%s)", t.ScanInterval, t.RefreshBefore)
	}
	return nil
}

// Want is what the demo expects of a connection.
type Want string

// What a demo connection is there to show.
const (
	WantRefreshed Want = "refreshed" // a valid seller: its token is renewed
	WantRejected  Want = "rejected"  // the marketplace rejects its credentials: a permanent failure
	WantMalformed Want = "malformed" // its inputFields cannot be used: a permanent failure
)

// Row is one demo connection: a channels row and an ie_appinstall_connection
// row.
type Row struct {
	ID int64
	// InputFields is the connection's credentials object (raw, may be
	// malformed on purpose).
	InputFields string
	// RefreshToken is the stored refresh token ("" for NULL).
	RefreshToken string
	// ExpiresIn is the stored token's expiry relative to the demo's start;
	// Never means NULL (no token generated yet). ExpiresAt, when set, is an
	// absolute expiry instead.
	ExpiresIn time.Duration
	ExpiresAt *time.Time
	// Seeded rows repeat a row of deploy/mysql/02-seed.sql exactly (a test
	// holds them to it), so the demo shows the seed's connections.
	Seeded bool
	// Lifetime, when set, is the lifetime of the tokens the marketplace
	// issues this connection (OAuth: its expires_in), shorter than the
	// kind's; the refresher learns it from each answer and refreshes the
	// token on its own clock.
	Lifetime time.Duration
	Want     Want
	// Note says in a few words what the row shows (dashboard).
	Note string
}

// Never is the ExpiresIn of a connection whose token was never generated.
const Never time.Duration = -1 << 63

// expiry returns the row's stored expiry for a demo started at start (nil:
// NULL).
func (r Row) expiry(start time.Time) *time.Time {
	switch {
	case r.ExpiresAt != nil:
		t := r.ExpiresAt.UTC()
		return &t
	case r.ExpiresIn == Never:
		return nil
	default:
		t := start.Add(r.ExpiresIn).UTC().Truncate(time.Second)
		return &t
	}
}

// Kind is one provider kind in the demo: the provider entry the demo
// configures for it, pointed at the sandbox, and its connections. Adding a
// kind to the demo is adding a Kind to Kinds: its connections are seeded, its
// entry is scanned and refreshed, and the progress, dashboard and summary
// show it, with nothing else to change.
type Kind struct {
	// Entry returns the kind's provider entry, given the sandbox's base URL.
	Entry func(sandboxURL string, t Timing) registry.Entry
	// Rows returns the kind's connections. Ids must be unique across kinds.
	Rows func(t Timing) []Row
	// Prepare, when set, readies the sandbox for the kind's connections:
	// registering clients, or changing the switches in f, which the demo
	// applies once every kind has had its say.
	Prepare func(sb *sandbox.Server, f *sandbox.Faults, t Timing)
}

// Kinds are the provider kinds the demo runs, one per token flow: the
// three seed flows, then Shopzone (a marketplace that exists only as a
// declarative http_token entry) and an OAuth2 client credentials grant.
func Kinds() []Kind {
	return []Kind{ajioKind, oauth2Kind, unicommerceKind, shopzoneKind, clientCredentialsKind}
}

// seedExpiry is the expiry of the seed document's two Ajio connections.
var seedExpiry = time.Date(2022, 8, 17, 16, 25, 8, 0, time.UTC)

// sellers returns the rows every kind has: six valid connections made by
// valid(id), ids base+11 to base+16 (three due now, three due in the second
// wave), then one the marketplace rejects (base+90) and one with malformed
// inputFields (base+91).
func sellers(t Timing, base int64, valid func(id int64) Row, rejected, malformed Row) []Row {
	var rows []Row
	for i := int64(1); i <= 6; i++ {
		id := base + 10 + i
		r := valid(id)
		r.ID, r.Want = id, WantRefreshed
		switch {
		case i <= 2:
			r.ExpiresIn, r.Note = Never, "never had a token: due now"
		case i <= 3:
			r.ExpiresIn, r.Note = -time.Hour, "token expired an hour ago: due now"
		default:
			r.ExpiresIn, r.Note = t.SecondWave+t.RefreshBefore, fmt.Sprintf("token valid, due in %s", t.SecondWave)
		}
		rows = append(rows, r)
	}
	rejected.ID, rejected.Want, rejected.ExpiresIn = base+90, WantRejected, -time.Hour
	malformed.ID, malformed.Want, malformed.ExpiresIn = base+91, WantMalformed, -time.Hour
	return append(rows, rejected, malformed)
}

// ajioKind is integration type 16 (Ajio Dropship): the seed document's two
// connections and generated sellers the sandbox accepts.
var ajioKind = Kind{
	Entry: func(sandboxURL string, t Timing) registry.Entry {
		return registry.Entry{
			IntegrationType: "16", Kind: registry.KindAjio, BaseURL: sandboxURL,
			TokenTTL: registry.Duration(t.TokenTTL), RefreshBefore: registry.Duration(t.RefreshBefore),
			Timeout: registry.Duration(5 * time.Second),
		}
	},
	Rows: func(t Timing) []Row {
		rows := []Row{
			{ID: 11, Seeded: true, Want: WantRefreshed, ExpiresAt: &seedExpiry, Note: "seed document's seller, token expired in 2022",
				InputFields: `{"username":"abc@itc.com","password":"abc123"}`},
			{ID: 99, Seeded: true, Want: WantRefreshed, ExpiresAt: &seedExpiry, Note: "seed document's seller, token expired in 2022",
				InputFields: `{"username":"brand@itc.com","password":"pqr123"}`},
		}
		return append(rows, sellers(t, 1600,
			func(id int64) Row {
				return Row{InputFields: userPass(fmt.Sprintf("seller-%d%s", id, sandbox.GeneratedDomain), "")}
			},
			Row{Note: "password rejected by the marketplace", InputFields: userPass("mallory"+sandbox.GeneratedDomain, "not-her-password")},
			Row{Note: "inputFields is not valid JSON", InputFields: `{"username":"broken` + sandbox.GeneratedDomain + `","password":"pw-`},
		)...)
	},
}

// oauth2Kind is integration type 42: an OAuth2 custom app whose refresh
// tokens the sandbox rotates on every refresh, so the demo shows the new
// refresh token stored with the access token.
var oauth2Kind = Kind{
	Entry: func(sandboxURL string, t Timing) registry.Entry {
		return registry.Entry{
			IntegrationType: "42", Kind: registry.KindOAuth2Refresh, TokenURL: sandboxURL + "/oauth/token",
			TokenTTL: registry.Duration(t.TokenTTL), RefreshBefore: registry.Duration(t.RefreshBefore),
			Timeout: registry.Duration(5 * time.Second), BodyFormat: "form",
		}
	},
	Rows: func(t Timing) []Row {
		client := fmt.Sprintf(`{"client_id":%q,"client_secret":%q}`, sandbox.DefaultClientID, sandbox.DefaultClientSecret)
		rows := []Row{
			{ID: 4201, Seeded: true, Want: WantRefreshed, ExpiresIn: Never, Note: "seed's OAuth2 connection: never had a token",
				InputFields: client, RefreshToken: sandbox.RefreshToken("seller-4201")},
		}
		rows = append(rows, Row{ID: 4250, Want: WantRefreshed, ExpiresIn: Never, Lifetime: t.RefreshBefore / 2,
			Note:        fmt.Sprintf("tokens live %s, under refresh_before: refreshed on their own clock", t.RefreshBefore/2),
			InputFields: client, RefreshToken: sandbox.RefreshToken(shortSubject)})
		return append(rows, sellers(t, 4200,
			func(id int64) Row {
				return Row{InputFields: client, RefreshToken: sandbox.RefreshToken(fmt.Sprintf("seller-%d", id))}
			},
			Row{Note: "refresh token revoked by the marketplace", InputFields: client, RefreshToken: sandbox.GeneratedRefreshPrefix + "revoked-4290.0000000000000000"},
			Row{Note: "inputFields is not valid JSON", InputFields: `{"client_id":"` + sandbox.DefaultClientID + `","client_secret":`,
				RefreshToken: sandbox.RefreshToken("seller-4291")},
		)...)
	},
	Prepare: func(_ *sandbox.Server, f *sandbox.Faults, t Timing) {
		f.OAuthExpiresIn = int(t.TokenTTL / time.Second)
		f.OAuthExpiresInBy = map[string]int{shortSubject: int(t.RefreshBefore / 2 / time.Second)}
		f.Rotate = true
		f.RotationGrace = t.RefreshBefore
	},
}

// shortSubject is the OAuth seller whose tokens live half of refresh_before.
const shortSubject = "seller-4250"

// unicommerceKind is integration type 43: a Unicommerce-style marketplace
// (GET with the credentials in the query).
var unicommerceKind = Kind{
	Entry: func(sandboxURL string, t Timing) registry.Entry {
		return registry.Entry{
			IntegrationType: "43", Kind: registry.KindUnicommerce, BaseURL: sandboxURL,
			TokenTTL: registry.Duration(t.TokenTTL), RefreshBefore: registry.Duration(t.RefreshBefore),
			Timeout: registry.Duration(5 * time.Second),
		}
	},
	Rows: func(t Timing) []Row {
		seller := "seller-4301" + sandbox.GeneratedDomain
		rows := []Row{
			{ID: 4301, Seeded: true, Want: WantRefreshed, ExpiresIn: Never, Note: "seed's Unicommerce connection: never had a token",
				InputFields: userPass(seller, "")},
		}
		return append(rows, sellers(t, 4300,
			func(id int64) Row {
				return Row{InputFields: userPass(fmt.Sprintf("seller-%d%s", id, sandbox.GeneratedDomain), "")}
			},
			Row{Note: "password rejected by the marketplace", InputFields: userPass("trudy"+sandbox.GeneratedDomain, "not-her-password")},
			Row{Note: `inputFields has no "password"`, InputFields: fmt.Sprintf(`{"username":"seller-4391%s"}`, sandbox.GeneratedDomain)},
		)...)
	},
}

// shopzoneKind is integration type 61: the sandbox's Shopzone, configured
// only by its http_token entry (sandbox.ShopzoneEntry): a form login, the
// token under data.auth.token, an absolute expiry the marketplace sets.
var shopzoneKind = Kind{
	Entry: func(sandboxURL string, t Timing) registry.Entry {
		entries, err := registry.Parse([]byte("providers:\n"+strings.ReplaceAll(sandbox.ShopzoneEntry, "BASE_URL", sandboxURL)), "", noEnv)
		if err != nil {
			panic("demo: the sandbox's Shopzone entry does not parse: " + err.Error()) // a test parses it
		}
		e := entries[0]
		e.RefreshBefore, e.Timeout = registry.Duration(t.RefreshBefore), registry.Duration(5*time.Second)
		return e
	},
	Rows: func(t Timing) []Row {
		return sellers(t, 6100,
			func(id int64) Row {
				return Row{InputFields: userPass(fmt.Sprintf("seller-%d%s", id, sandbox.GeneratedDomain), "")}
			},
			Row{Note: "login rejected by the marketplace (BAD_LOGIN)", InputFields: userPass("oscar"+sandbox.GeneratedDomain, "not-his-password")},
			Row{Note: `inputFields has no "username"`, InputFields: `{"password":"pw-6191"}`},
		)
	},
	Prepare: func(_ *sandbox.Server, f *sandbox.Faults, t Timing) {
		f.ShopzoneExpiresIn = int(t.TokenTTL / time.Second)
	},
}

// clientCredentialsKind is integration type 50: an app's OAuth2 client
// credentials grant (RFC 6749 §4.4): a new grant every refresh, no refresh
// token; the entry's client, or the connection's own.
var clientCredentialsKind = Kind{
	Entry: func(sandboxURL string, t Timing) registry.Entry {
		return registry.Entry{
			IntegrationType: "50", Kind: registry.KindClientCredentials, TokenURL: sandboxURL + "/oauth/token",
			ClientID: sandbox.DefaultClientID, ClientSecret: sandbox.DefaultClientSecret, ClientAuth: "basic",
			BodyFormat: "form", Scope: "orders", RefreshBefore: registry.Duration(t.RefreshBefore),
			Timeout: registry.Duration(5 * time.Second),
		}
	},
	Rows: func(t Timing) []Row {
		return sellers(t, 5000,
			func(id int64) Row {
				if id%2 == 0 {
					return Row{InputFields: `{}`} // the entry's client
				}
				return Row{InputFields: fmt.Sprintf(`{"client_id":%q,"client_secret":%q}`, sandbox.DefaultClientID, sandbox.DefaultClientSecret)}
			},
			Row{Note: "client secret rejected (invalid_client)", InputFields: fmt.Sprintf(`{"client_id":%q,"client_secret":"not-the-secret"}`, sandbox.DefaultClientID)},
			Row{Note: "inputFields is not valid JSON", InputFields: `{"client_secret":`},
		)
	},
	Prepare: func(_ *sandbox.Server, f *sandbox.Faults, t Timing) {
		f.OAuthExpiresIn = int(t.TokenTTL / time.Second)
	},
}

// userPass returns username/password inputFields; an empty password is the
// one the sandbox accepts for a generated seller.
func userPass(user, password string) string {
	if password == "" {
		password = sandbox.Password(user)
	}
	return fmt.Sprintf(`{"username":%q,"password":%q}`, user, password)
}

// noEnv is the getenv of the demo's entries: they hold their own demo
// credentials and read no environment.
func noEnv(string) string { return "" }
