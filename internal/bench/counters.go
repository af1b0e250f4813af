package bench

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/redis/go-redis/v9"
)

// The counters of the costs figure (figure 9): MariaDB's SHOW GLOBAL STATUS
// and per-user statistics, Redis's INFO, read on servers only the product
// and the bench use. The parsing and the arithmetic are here, apart from
// the run, so they are unit-tested.

// dbCounters are the SHOW GLOBAL STATUS counters the figure reads, those
// the server has. Rows_read is MariaDB's count of rows read from tables
// (temporary tables apart, in Rows_tmp_read); Innodb_rows_read is MySQL's
// and older MariaDB's.
var dbCounters = []string{
	"Rows_read", "Innodb_rows_read", "Rows_tmp_read", "Handler_read_rnd_next", "Handler_read_next", "Handler_read_key",
	"Handler_read_first", "Com_select", "Com_update", "Questions",
}

// rowsCounter is the counter of the figure: Rows_read, or
// Innodb_rows_read on a server without it.
func rowsCounter(counters map[string]int64) string {
	if _, ok := counters["Rows_read"]; ok || counters == nil {
		return "Rows_read"
	}
	return "Innodb_rows_read"
}

// dbStatus is a snapshot of dbCounters, and of every user's statistics
// (information_schema.USER_STATISTICS, userstat=1) by user name.
type dbStatus struct {
	At       time.Time
	Counters map[string]int64
	Users    map[string]userStat
}

// userStat is one user's line of USER_STATISTICS.
type userStat struct {
	RowsRead int64 `db:"ROWS_READ"`
	Selects  int64 `db:"SELECT_COMMANDS"`
	Updates  int64 `db:"UPDATE_COMMANDS"`
	Other    int64 `db:"OTHER_COMMANDS"`
}

func (u userStat) sub(o userStat) userStat {
	return userStat{u.RowsRead - o.RowsRead, u.Selects - o.Selects, u.Updates - o.Updates, u.Other - o.Other}
}

func readDBStatus(ctx context.Context, root *sqlx.DB) (dbStatus, error) {
	s := dbStatus{At: time.Now(), Counters: map[string]int64{}, Users: map[string]userStat{}}
	var rows []struct {
		Name  string `db:"Variable_name"`
		Value string `db:"Value"`
	}
	if err := root.SelectContext(ctx, &rows, "SHOW GLOBAL STATUS WHERE Variable_name IN ('"+strings.Join(dbCounters, "','")+"')"); err != nil {
		return s, fmt.Errorf("SHOW GLOBAL STATUS: %w", err)
	}
	for _, r := range rows {
		v, err := strconv.ParseInt(r.Value, 10, 64)
		if err != nil {
			return s, fmt.Errorf("SHOW GLOBAL STATUS %s = %q: %w", r.Name, r.Value, err)
		}
		s.Counters[r.Name] = v
	}
	var users []struct {
		User string `db:"USER"`
		userStat
	}
	if err := root.SelectContext(ctx, &users, `SELECT USER, ROWS_READ, SELECT_COMMANDS, UPDATE_COMMANDS, OTHER_COMMANDS
		FROM information_schema.USER_STATISTICS`); err != nil {
		return s, fmt.Errorf("USER_STATISTICS: %w", err)
	}
	for _, u := range users {
		s.Users[u.User] = u.userStat
	}
	return s, nil
}

// dbDelta is what the database did between two snapshots, less the
// bench's own reading of them (Own: the delta of two back-to-back
// snapshots, measured while nothing else ran).
type dbDelta struct {
	Seconds  float64
	Counters map[string]int64
	Users    map[string]userStat
}

func (b dbStatus) since(a dbStatus, own map[string]int64) dbDelta {
	d := dbDelta{Seconds: b.At.Sub(a.At).Seconds(), Counters: map[string]int64{}, Users: map[string]userStat{}}
	for _, k := range dbCounters {
		if _, ok := b.Counters[k]; ok {
			d.Counters[k] = b.Counters[k] - a.Counters[k] - own[k]
		}
	}
	for u, s := range b.Users {
		d.Users[u] = s.sub(a.Users[u])
	}
	return d
}

// rate is counter k per second.
func (d dbDelta) rate(k string) float64 {
	if d.Seconds <= 0 {
		return math.NaN()
	}
	return float64(d.Counters[k]) / d.Seconds
}

// parseInfo reads the "key:value" lines of Redis INFO (any sections).
func parseInfo(text string) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if k, v, ok := strings.Cut(l, ":"); ok {
			out[k] = v
		}
	}
	return out
}

// redisStats is one INFO snapshot (sections stats, commandstats, memory)
// with the bench's own commands sent before it (cumulative, by name).
type redisStats struct {
	At          time.Time
	Total       int64            // total_commands_processed
	Calls       map[string]int64 // commandstats calls by command ("evalsha", "client|setinfo")
	UsedMemory  int64            // used_memory
	UsedDataset int64            // used_memory_dataset
	MemClients  int64            // mem_clients_normal: the clients' buffers
	Clients     int64            // connected_clients
	Keys        int64            // db0 keys
	Own         map[string]int64
	Lua         int64 // commands scripts ran so far, from MONITOR (luaMeter)
}

// parseRedisStats reads an INFO answer holding the stats, commandstats,
// memory and keyspace sections.
func parseRedisStats(text string) (redisStats, error) {
	info := parseInfo(text)
	s := redisStats{Calls: map[string]int64{}}
	var err error
	num := func(k string) int64 {
		v, perr := strconv.ParseInt(info[k], 10, 64)
		if perr != nil && err == nil {
			err = fmt.Errorf("INFO %s = %q: %w", k, info[k], perr)
		}
		return v
	}
	s.Total = num("total_commands_processed")
	s.UsedMemory = num("used_memory")
	s.UsedDataset = num("used_memory_dataset")
	s.MemClients = num("mem_clients_normal")
	s.Clients = num("connected_clients")
	for k, v := range info {
		name, ok := strings.CutPrefix(k, "cmdstat_")
		if !ok {
			continue
		}
		for _, f := range strings.Split(v, ",") {
			if c, ok := strings.CutPrefix(f, "calls="); ok {
				n, perr := strconv.ParseInt(c, 10, 64)
				if perr != nil {
					return s, fmt.Errorf("INFO %s: %w", k, perr)
				}
				s.Calls[name] = n
			}
		}
	}
	if db, ok := info["db0"]; ok { // keys=12,expires=0,avg_ttl=0
		for _, f := range strings.Split(db, ",") {
			if c, ok := strings.CutPrefix(f, "keys="); ok {
				s.Keys, _ = strconv.ParseInt(c, 10, 64)
			}
		}
	}
	return s, err
}

// cmdDelta is the commands Redis executed between two snapshots, the
// bench's own taken out.
type cmdDelta struct {
	Seconds float64
	Total   int64            // total_commands_processed
	Calls   map[string]int64 // commandstats
	Own     int64            // the bench's own commands taken out
	Lua     int64            // of Total, the commands scripts ran
}

func (b redisStats) since(a redisStats) cmdDelta {
	d := cmdDelta{Seconds: b.At.Sub(a.At).Seconds(), Total: b.Total - a.Total, Calls: map[string]int64{}, Lua: b.Lua - a.Lua}
	for k, v := range b.Calls {
		if n := v - a.Calls[k]; n != 0 {
			d.Calls[k] = n
		}
	}
	for k, v := range b.Own {
		n := v - a.Own[k]
		d.Own += n
		d.Total -= n
		if d.Calls[k] -= n; d.Calls[k] == 0 {
			delete(d.Calls, k)
		}
	}
	return d
}

// sum is the commandstats calls summed.
func (d cmdDelta) sum() int64 {
	var n int64
	for _, v := range d.Calls {
		n += v
	}
	return n
}

// CommandCost is one command's share of a refresh.
type CommandCost struct {
	Name       string
	Calls      int64   // in the refresh window
	Background float64 // the idle rate times the window
	PerRefresh float64 // (Calls − Background) ÷ refreshes
}

// perRefresh subtracts the idle background (idle's rate times the
// window's length) from the window's commands and divides by n: by
// command (commandstats), sorted by cost, and in all
// (total_commands_processed and the commandstats sum).
func perRefresh(idle, window cmdDelta, n int) (rows []CommandCost, total, sum float64) {
	scale := 0.0
	if idle.Seconds > 0 {
		scale = window.Seconds / idle.Seconds
	}
	names := map[string]bool{}
	for k := range idle.Calls {
		names[k] = true
	}
	for k := range window.Calls {
		names[k] = true
	}
	for k := range names {
		bg := float64(idle.Calls[k]) * scale
		rows = append(rows, CommandCost{Name: k, Calls: window.Calls[k], Background: bg,
			PerRefresh: (float64(window.Calls[k]) - bg) / float64(n)})
	}
	slices.SortFunc(rows, func(a, b CommandCost) int {
		if c := cmp.Compare(b.PerRefresh, a.PerRefresh); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	total = (float64(window.Total) - float64(idle.Total)*scale) / float64(n)
	sum = (float64(window.sum()) - float64(idle.sum())*scale) / float64(n)
	return rows, total, sum
}

// cmdCounter is a go-redis hook counting the bench's own commands by
// commandstats name, so that they are taken out of the figure.
type cmdCounter struct {
	mu sync.Mutex
	n  map[string]int64
}

func newCmdCounter() *cmdCounter { return &cmdCounter{n: map[string]int64{}} }

func (c *cmdCounter) add(cmd redis.Cmder) {
	c.mu.Lock()
	c.n[cmdstatName(cmd.Args())]++
	c.mu.Unlock()
}

func (c *cmdCounter) snapshot() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int64, len(c.n))
	for k, v := range c.n {
		out[k] = v
	}
	return out
}

func (c *cmdCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *cmdCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.add(cmd)
		return next(ctx, cmd)
	}
}

func (c *cmdCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			c.add(cmd)
		}
		return next(ctx, cmds)
	}
}

// containers are the commands commandstats counts by subcommand.
var containers = map[string]bool{"client": true, "config": true, "memory": true, "script": true,
	"object": true, "command": true, "cluster": true, "function": true, "latency": true, "module": true,
	"acl": true, "slowlog": true, "xinfo": true, "pubsub": true, "debug": false}

// cmdstatName is a command's name as INFO commandstats spells it: lower
// case, "memory|usage" for a container's subcommand.
func cmdstatName(args []any) string {
	if len(args) == 0 {
		return "?"
	}
	name := strings.ToLower(fmt.Sprint(args[0]))
	if containers[name] && len(args) > 1 {
		name += "|" + strings.ToLower(fmt.Sprint(args[1]))
	}
	return name
}

// The parts of a key that vary from one connection, task or process to
// another, replaced to group the keys.
var (
	uuidRE  = regexp.MustCompile(`[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}`)
	digitRE = regexp.MustCompile(`[0-9]+`)
)

// keyPattern is key with its uuids and numbers replaced, so that the keys
// of one kind (a task per connection, a lease per connection) group.
func keyPattern(key string) string {
	key = uuidRE.ReplaceAllString(key, "<uuid>")
	return digitRE.ReplaceAllString(key, "<n>")
}

// KeyGroup is the keys of one pattern: how many, their elements (fields,
// members, items), and their MEMORY USAGE summed.
type KeyGroup struct {
	Pattern  string
	Type     string
	Keys     int
	Elements int64
	Bytes    int64
}

// groupKeys groups keys by keyPattern and type, largest first.
func groupKeys(keys []keyInfo) []KeyGroup {
	idx := map[[2]string]*KeyGroup{}
	for _, k := range keys {
		id := [2]string{keyPattern(k.Name), k.Type}
		g := idx[id]
		if g == nil {
			g = &KeyGroup{Pattern: id[0], Type: id[1]}
			idx[id] = g
		}
		g.Keys++
		g.Elements += k.Elements
		g.Bytes += k.Bytes
	}
	out := make([]KeyGroup, 0, len(idx))
	for _, g := range idx {
		out = append(out, *g)
	}
	slices.SortFunc(out, func(a, b KeyGroup) int {
		if c := cmp.Compare(b.Bytes, a.Bytes); c != 0 {
			return c
		}
		return strings.Compare(a.Pattern+a.Type, b.Pattern+b.Type)
	})
	return out
}

type keyInfo struct {
	Name     string
	Type     string
	Elements int64
	Bytes    int64
}

// KeyChange is one key group before and after the refreshes.
type KeyChange struct {
	Pattern, Type           string
	KeysBefore, KeysAfter   int
	ElemsBefore, ElemsAfter int64
	BytesBefore, BytesAfter int64
}

// keyChanges pairs the groups of two inventories, the largest growth
// first.
func keyChanges(before, after []KeyGroup) []KeyChange {
	idx := map[[2]string]*KeyChange{}
	get := func(g KeyGroup) *KeyChange {
		id := [2]string{g.Pattern, g.Type}
		if idx[id] == nil {
			idx[id] = &KeyChange{Pattern: g.Pattern, Type: g.Type}
		}
		return idx[id]
	}
	for _, g := range before {
		c := get(g)
		c.KeysBefore, c.ElemsBefore, c.BytesBefore = g.Keys, g.Elements, g.Bytes
	}
	for _, g := range after {
		c := get(g)
		c.KeysAfter, c.ElemsAfter, c.BytesAfter = g.Keys, g.Elements, g.Bytes
	}
	out := make([]KeyChange, 0, len(idx))
	for _, c := range idx {
		out = append(out, *c)
	}
	slices.SortFunc(out, func(a, b KeyChange) int {
		if c := cmp.Compare(b.BytesAfter-b.BytesBefore, a.BytesAfter-a.BytesBefore); c != 0 {
			return c
		}
		return strings.Compare(a.Pattern+a.Type, b.Pattern+b.Type)
	})
	return out
}

// inventory lists every key of the server with its type, length and
// MEMORY USAGE (SCAN with COUNT 1000, then pipelines).
func inventory(ctx context.Context, rdb *redis.Client) ([]KeyGroup, error) {
	var keys []keyInfo
	var cursor uint64
	for {
		batch, next, err := rdb.Scan(ctx, cursor, "*", 1000).Result()
		if err != nil {
			return nil, err
		}
		if len(batch) > 0 {
			pipe := rdb.Pipeline()
			types := make([]*redis.StatusCmd, len(batch))
			for i, k := range batch {
				types[i] = pipe.Type(ctx, k)
			}
			if _, err := pipe.Exec(ctx); err != nil {
				return nil, err
			}
			pipe = rdb.Pipeline()
			lens := make([]*redis.IntCmd, len(batch))
			mems := make([]*redis.IntCmd, len(batch))
			for i, k := range batch {
				switch types[i].Val() {
				case "hash":
					lens[i] = pipe.HLen(ctx, k)
				case "zset":
					lens[i] = pipe.ZCard(ctx, k)
				case "list":
					lens[i] = pipe.LLen(ctx, k)
				case "set":
					lens[i] = pipe.SCard(ctx, k)
				}
				mems[i] = pipe.MemoryUsage(ctx, k)
			}
			if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
				return nil, err
			}
			for i, k := range batch {
				ki := keyInfo{Name: k, Type: types[i].Val(), Bytes: mems[i].Val()}
				if lens[i] != nil {
					ki.Elements = lens[i].Val()
				}
				keys = append(keys, ki)
			}
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	return groupKeys(keys), nil
}

// scanLog is what the scanner's JSON log says of its passes: "scanned"
// lines, and the due connections and enqueued tasks they report.
type scanLog struct {
	Passes, Due, Enqueued int
	Seconds               float64 // the passes' durations summed
}

func parseScanLog(text string) scanLog {
	var s scanLog
	for _, l := range strings.Split(text, "\n") {
		if !strings.Contains(l, `"scanned"`) {
			continue
		}
		var line struct {
			Msg      string  `json:"msg"`
			Due      int     `json:"due"`
			Enqueued int     `json:"enqueued"`
			Duration float64 `json:"duration"` // zap's production encoding: seconds
		}
		if json.Unmarshal([]byte(l), &line) != nil || line.Msg != "scanned" {
			continue
		}
		s.Passes++
		s.Due += line.Due
		s.Enqueued += line.Enqueued
		s.Seconds += line.Duration
	}
	return s
}

func (s scanLog) sub(o scanLog) scanLog {
	return scanLog{s.Passes - o.Passes, s.Due - o.Due, s.Enqueued - o.Enqueued, s.Seconds - o.Seconds}
}

// helpDefault is the default a binary's --help gives a setting ("" and
// false when the binary does not read it).
func helpDefault(help, name string) (string, bool) {
	for _, l := range strings.Split(help, "\n") {
		f := strings.Fields(l)
		if len(f) > 0 && f[0] == name {
			if len(f) > 1 {
				return strings.Join(f[1:], " "), true
			}
			return "", true
		}
	}
	return "", false
}

// spliceSection replaces what lies between the markers <!-- name:begin -->
// and <!-- name:end --> (the markers included) in doc by section, which
// carries its own markers.
func spliceSection(doc, name, section string) (string, error) {
	begin, end := "<!-- "+name+":begin -->", "<!-- "+name+":end -->"
	i := strings.Index(doc, begin)
	j := strings.Index(doc, end)
	if i < 0 || j < i {
		return "", fmt.Errorf("no %s … %s in the document", begin, end)
	}
	if strings.Count(doc, begin) > 1 || strings.Count(doc, end) > 1 {
		return "", fmt.Errorf("the markers of %s appear more than once", name)
	}
	return doc[:i] + strings.TrimRight(section, "\n") + doc[j+len(end):], nil
}

// spliceRows replaces the table rows of doc that start with prefix (a
// contiguous block) by rows; a doc without such rows is left as it is.
func spliceRows(doc, prefix string, rows []string) string {
	lines := strings.Split(doc, "\n")
	first, last := -1, -1
	for i, l := range lines {
		if strings.HasPrefix(l, prefix) {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	if first < 0 {
		return doc
	}
	out := append(slices.Clone(lines[:first]), rows...)
	return strings.Join(append(out, lines[last+1:]...), "\n")
}

// clientPerRefresh is the commands clients sent per refresh in the window
// of refresh, less idle's rate of them over as long, ÷ n: what
// total_commands_processed counts less what scripts ran.
func clientPerRefresh(idle, refresh cmdDelta, n int) float64 {
	if n == 0 {
		return 0
	}
	rate := 0.0
	if idle.Seconds > 0 {
		rate = float64(idle.Total-idle.Lua) / idle.Seconds
	}
	return (float64(refresh.Total-refresh.Lua) - rate*refresh.Seconds) / float64(n)
}
