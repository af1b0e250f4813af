package demo

import (
	"fmt"
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
	// Never means NULL (no token generated yet).
	ExpiresIn time.Duration
	// Seeded rows come from deploy/mysql/02-seed.sql, not from this table.
	Seeded bool
	Want   Want
	// Note says in a few words what the row shows (dashboard).
	Note string
}

// Never is the ExpiresIn of a connection whose token was never generated.
const Never time.Duration = -1 << 63

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
	// Prepare, when set, readies the sandbox for the kind's connections
	// (registering clients, say).
	Prepare func(sb *sandbox.Server)
}

// Kinds are the provider kinds the demo runs.
func Kinds() []Kind {
	return []Kind{ajioKind}
}

// ajioKind is integration type 16 (Ajio Dropship): the seed document's two
// connections, generated sellers the sandbox accepts, one seller whose
// password the marketplace rejects and one with broken inputFields.
var ajioKind = Kind{
	Entry: func(sandboxURL string, t Timing) registry.Entry {
		return registry.Entry{
			IntegrationType: "16",
			Kind:            registry.KindAjio,
			BaseURL:         sandboxURL,
			TokenTTL:        registry.Duration(t.TokenTTL),
			RefreshBefore:   registry.Duration(t.RefreshBefore),
			Timeout:         registry.Duration(5 * time.Second),
		}
	},
	Rows: func(t Timing) []Row {
		rows := []Row{
			{ID: 11, Seeded: true, Want: WantRefreshed, Note: "seed document's seller, token expired in 2022"},
			{ID: 99, Seeded: true, Want: WantRefreshed, Note: "seed document's seller, token expired in 2022"},
		}
		dueSoon := t.SecondWave + t.RefreshBefore
		for i := int64(1); i <= 12; i++ {
			r := Row{ID: 1600 + i, Want: WantRefreshed}
			r.InputFields = ajioCreds(fmt.Sprintf("seller-%d%s", r.ID, sandbox.GeneratedDomain), "")
			switch {
			case i <= 3:
				r.ExpiresIn, r.Note = Never, "never had a token: due now"
			case i <= 6:
				r.ExpiresIn, r.Note = -time.Hour, "token expired an hour ago: due now"
			default:
				r.ExpiresIn, r.Note = dueSoon, fmt.Sprintf("token valid, due in %s", t.SecondWave)
			}
			rows = append(rows, r)
		}
		return append(rows,
			Row{ID: 1690, Want: WantRejected, ExpiresIn: -time.Hour, Note: "password rejected by the marketplace",
				InputFields: ajioCreds("mallory"+sandbox.GeneratedDomain, "not-her-password")},
			Row{ID: 1691, Want: WantMalformed, ExpiresIn: -time.Hour, Note: "inputFields is not valid JSON",
				InputFields: `{"username":"broken` + sandbox.GeneratedDomain + `","password":"pw-`},
		)
	},
}

// ajioCreds returns Ajio inputFields; an empty password is the one the
// sandbox accepts for a generated seller.
func ajioCreds(user, password string) string {
	if password == "" {
		password = sandbox.Password(user)
	}
	return fmt.Sprintf(`{"username":%q,"password":%q}`, user, password)
}
