package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/seed013449c2/session"
)

// TestBatchMatchesApply sends random sequences of changes to the update
// script in batches of 1 to 8 and holds each change's result to
// Change.Apply applied to the record the changes before it left: same
// values, same refusals (a refused change leaves the record as it was for
// the next), logins in the middle of a batch (the script stops there, the
// store indexes the record and sends the rest), and ErrNotFound for the
// changes after one that emptied the record.
func TestBatchMatchesApply(t *testing.T) {
	t.Parallel()
	for _, topo := range topologies {
		t.Run(topo.name, func(t *testing.T) {
			t.Parallel()
			c := topo.client(t)
			s := newStore(t, c, Options{})
			ctx := t.Context()
			seed := uint64(time.Now().UnixNano())
			r := rand.New(rand.NewPCG(seed, 8))
			outcomes := map[string]int{}
			defer func() { t.Logf("seed %d, outcomes: %v", seed, outcomes) }()
			for seq := range 12 {
				key := fmt.Sprintf("batch-%d", seq)
				model := freshRecord(map[string]json.RawMessage{"a": json.RawMessage(`1`), "n": json.RawMessage(`null`)})
				if err := s.Create(ctx, key, model); err != nil {
					t.Fatal(err)
				}
				model.Values = maps.Clone(model.Values)
				for batch := 0; model != nil && batch < 10; batch++ {
					var chs []*session.Change
					var wants []*session.Record
					var wantErrs []error
					cur := model
					for range 1 + r.IntN(8) {
						base := cur
						if base == nil {
							base = model
						}
						ch := randomChange(r, base)
						if r.IntN(15) == 0 {
							ch = &session.Change{Clear: true} // empties the record
						}
						if ch.Owner != nil && cur != nil && *ch.Owner != cur.Owner {
							outcomes["login"]++
						}
						chs = append(chs, ch)
						if cur == nil {
							wants, wantErrs = append(wants, nil), append(wantErrs, session.ErrNotFound)
							continue
						}
						want, err := ch.Apply(cur)
						wants, wantErrs = append(wants, want), append(wantErrs, err)
						if err == nil {
							cur = want
							if len(want.Values) == 0 {
								cur = nil
							}
						}
					}
					results := s.applyUpdates(ctx, key, chs, "")
					for i, res := range results {
						where := fmt.Sprintf("seq %d batch %d change %d of %d (%+v)", seq, batch, i, len(chs), chs[i])
						outcomes[errClass(wantErrs[i])]++
						if errClass(res.err) != errClass(wantErrs[i]) {
							t.Fatalf("%s: err = %v, Apply says %v", where, res.err, wantErrs[i])
						}
						if res.err != nil {
							continue
						}
						if !sameRecord(res.rec, wants[i]) {
							t.Fatalf("%s: got %+v %s, Apply says %+v %s", where, res.rec, show(res.rec.Values), wants[i], show(wants[i].Values))
						}
					}
					model = cur
					loaded, err := s.Load(ctx, key)
					switch {
					case model == nil:
						outcomes["emptied"]++
						if !errors.Is(err, session.ErrNotFound) {
							t.Fatalf("seq %d batch %d: emptied record still loads: %v", seq, batch, err)
						}
					case err != nil:
						t.Fatalf("seq %d batch %d: Load: %v", seq, batch, err)
					case !sameRecord(loaded, model):
						t.Fatalf("seq %d batch %d: Load gives %+v %s, Apply says %+v %s", seq, batch, loaded, show(loaded.Values), model, show(model.Values))
					case model.Owner != "":
						// The owner index lists the record until its end.
						score, err := c.ZScore(ctx, s.ownerKey(model.Owner), key).Result()
						if err != nil || int64(score) < endScore(model) {
							t.Fatalf("seq %d batch %d: index of %q lists the record under %v, %v; its end is %d", seq, batch, model.Owner, score, err, endScore(model))
						}
					}
				}
			}
		})
	}
}

// sameRecord compares what a store keeps of two records, all but Version.
func sameRecord(a, b *session.Record) bool {
	return maps.EqualFunc(a.Values, b.Values, func(x, y json.RawMessage) bool { return string(x) == string(y) }) &&
		a.Owner == b.Owner && a.Expires.Equal(b.Expires) && a.Deadline.Equal(b.Deadline) && a.Created.Equal(b.Created) &&
		a.IdleTimeout == b.IdleTimeout && a.Persist == b.Persist && a.Label == b.Label && a.Handle == b.Handle
}

// TestConcurrentUpdatesCombine: 32 goroutines add to one session through
// Update. Every add is kept, each caller gets the record as its own change
// left it (the counts returned are exactly 1..n), and the store sent fewer
// scripts than changes.
func TestConcurrentUpdatesCombine(t *testing.T) {
	t.Parallel()
	for _, topo := range topologies {
		t.Run(topo.name, func(t *testing.T) {
			t.Parallel()
			c := topo.client(t)
			hook := &countingHook{}
			c.AddHook(hook)
			s := newStore(t, c, Options{})
			ctx := t.Context()
			if err := s.Create(ctx, "hot", freshRecord(map[string]json.RawMessage{"n": json.RawMessage(`0`)})); err != nil {
				t.Fatal(err)
			}
			const writers, each = 32, 40
			seen := make([]int64, 0, writers*each)
			var mu sync.Mutex
			var wg sync.WaitGroup
			before := hook.trips.Load()
			for range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range each {
						rec, err := s.Update(ctx, "hot", &session.Change{Add: map[string]int64{"n": 1}, Values: map[string]json.RawMessage{"s": json.RawMessage(`"x"`)}})
						if err != nil {
							t.Error(err)
							return
						}
						n, _ := strconv.ParseInt(string(rec.Values["n"]), 10, 64)
						mu.Lock()
						seen = append(seen, n)
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			trips := hook.trips.Load() - before
			slices.Sort(seen)
			for i, n := range seen {
				if n != int64(i+1) {
					t.Fatalf("the returned counts are not 1..%d: position %d holds %d", len(seen), i, n)
				}
			}
			rec, err := s.Load(ctx, "hot")
			if err != nil || string(rec.Values["n"]) != strconv.Itoa(writers*each) {
				t.Fatalf("n = %s, %v after %d adds", rec.Values["n"], err, writers*each)
			}
			// How many combine depends on the scheduling (a loaded machine
			// runs fewer of the writers at once); TestCombinedBatch pins
			// the batching itself.
			t.Logf("%d updates in %d round trips", writers*each, trips)
			if trips >= writers*each {
				t.Errorf("%d updates took %d round trips: none was combined", writers*each, trips)
			}
		})
	}
}

// gateHook holds every EVALSHA of the update script, reporting it on held,
// until it receives from open.
type gateHook struct {
	open chan struct{}
	held chan struct{}
}

func (h *gateHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *gateHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if args := cmd.Args(); cmd.Name() == "evalsha" && len(args) > 1 && args[1] == updateScript.Hash() {
			h.held <- struct{}{}
			<-h.open
		}
		return next(ctx, cmd)
	}
}

func (h *gateHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// queued waits until n Updates of key wait behind the one in flight (-1:
// until one is in flight, none waiting, or none is in flight at all).
func queued(t *testing.T, c *combiner, key string, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		got := -1
		if f := c.keys[key]; f != nil {
			got = len(f.waiting)
		}
		c.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d updates queued, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestCombinedBatch queues changes of every kind behind an Update in
// flight and checks that they go to Redis as one batch, in arrival order,
// each with its own result: adds see each other, a refused change
// (ErrNotInteger, ErrTooLarge) changes nothing, a login indexes the
// record first, one that empties the record deletes it and the next finds
// no record; a caller that gave up while queued is not applied, and one
// whose deadline passes while its batch is in flight returns then.
func TestCombinedBatch(t *testing.T) {
	t.Parallel()
	c := topologies[0].client(t)
	gate := &gateHook{open: make(chan struct{}), held: make(chan struct{})}
	c.AddHook(gate)
	s := newStore(t, c, Options{})
	ctx := t.Context()
	const key = "k"
	if err := s.Create(ctx, key, freshRecord(map[string]json.RawMessage{"n": json.RawMessage(`0`), "text": json.RawMessage(`"abc"`)})); err != nil {
		t.Fatal(err)
	}
	owner := "user-" + testPrefix(t)
	add := func(n int64) *session.Change { return &session.Change{Add: map[string]int64{"n": n}} }
	type call struct {
		name    string
		ch      *session.Change
		timeout time.Duration // for the caller's context, 0 for none
		cancel  bool          // cancelled while queued
		want    string        // n afterwards, or the error wanted
	}
	calls := []call{
		{name: "first, in flight", ch: add(1), want: "1"},
		{name: "add", ch: add(10), want: "11"},
		{name: "gives up while queued", ch: add(1000), cancel: true, want: "withdrawn"},
		{name: "add to text", ch: &session.Change{Add: map[string]int64{"text": 1}}, want: "ErrNotInteger"},
		{name: "too large", ch: &session.Change{Values: map[string]json.RawMessage{"big": json.RawMessage(`"` + string(make([]byte, 200)) + `"`)}, MaxSize: 100}, want: "ErrTooLarge"},
		{name: "login", ch: &session.Change{Owner: &owner, Add: map[string]int64{"n": 100}}, want: "111"},
		{name: "deadline passes in flight", ch: add(1000), timeout: 500 * time.Millisecond, want: "deadline"},
		{name: "add after", ch: add(1), want: "1112"},
		{name: "empties", ch: &session.Change{Clear: true}, want: "emptied"},
		{name: "after the end", ch: add(1), want: "ErrNotFound"},
	}
	type outcome struct {
		rec  *session.Record
		err  error
		took time.Duration
	}
	outcomes := make([]chan outcome, len(calls))
	var cancels []context.CancelFunc
	for i, cl := range calls {
		cctx, cancel := context.WithCancel(ctx)
		if cl.timeout > 0 {
			cctx, cancel = context.WithTimeout(ctx, cl.timeout)
		}
		cancels = append(cancels, cancel)
		outcomes[i] = make(chan outcome, 1)
		go func() {
			start := time.Now()
			rec, err := s.Update(cctx, key, cl.ch)
			outcomes[i] <- outcome{rec, err, time.Since(start)}
		}()
		if i == 0 {
			<-gate.held // the first is in flight, held
		} else {
			queued(t, &s.comb, key, i)
		}
	}
	defer func() {
		for _, cancel := range cancels {
			cancel()
		}
	}()
	for i, cl := range calls {
		if cl.cancel {
			cancels[i]()
			out := <-outcomes[i]
			if !errors.Is(out.err, errWithdrawn) || !errors.Is(out.err, context.Canceled) {
				t.Fatalf("%s: %v, want errWithdrawn", cl.name, out.err)
			}
		}
	}
	queued(t, &s.comb, key, len(calls)-2)
	gate.open <- struct{}{} // the first goes; the rest follow as one batch
	<-gate.held             // which is held in flight
	for i, cl := range calls {
		if cl.timeout > 0 {
			// Returns at its deadline, while its batch is still held.
			out := <-outcomes[i]
			outcomes[i] <- out
			if out.took > cl.timeout+time.Second {
				t.Errorf("%s: returned after %v, its deadline was %v", cl.name, out.took, cl.timeout)
			}
		}
	}
	gate.open <- struct{}{} // the batch goes, and stops at the login
	<-gate.held             // the record is indexed, the rest is sent
	gate.open <- struct{}{}
	for i, cl := range calls {
		if cl.cancel {
			continue
		}
		out := <-outcomes[i]
		got := ""
		switch {
		case errors.Is(out.err, session.ErrNotInteger):
			got = "ErrNotInteger"
		case errors.Is(out.err, session.ErrTooLarge):
			got = "ErrTooLarge"
		case errors.Is(out.err, session.ErrNotFound):
			got = "ErrNotFound"
		case errors.Is(out.err, context.DeadlineExceeded):
			got = "deadline"
		case out.err != nil:
			got = out.err.Error()
		case len(out.rec.Values) == 0:
			got = "emptied"
		default:
			got = string(out.rec.Values["n"])
		}
		if got != cl.want {
			t.Errorf("%s: got %s (%v), want %s", cl.name, got, out.err, cl.want)
		}
		if cl.name == "login" && out.err == nil && out.rec.Owner != owner {
			t.Errorf("login: owner %q", out.rec.Owner)
		}
	}
	if score, err := c.ZScore(ctx, s.ownerKey(owner), key).Result(); err != nil || score <= 0 {
		t.Errorf("the owner index does not list the record: %v, %v", score, err)
	}
	if _, err := s.Load(ctx, key); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("Load after the emptying change: %v, want ErrNotFound", err)
	}
}

// TestBatchCapped: a burst longer than maxBatch goes as several batches of
// at most maxBatch changes, in arrival order, each change applied once.
// The combiner alone, on a fake apply: no Redis.
func TestBatchCapped(t *testing.T) {
	t.Parallel()
	var c combiner
	release := make(chan struct{})
	var mu sync.Mutex
	var sizes []int
	var applied []int64
	apply := func(ctx context.Context, key string, chs []*session.Change) []updateResult {
		mu.Lock()
		first := len(sizes) == 0
		sizes = append(sizes, len(chs))
		for _, ch := range chs {
			applied = append(applied, ch.Add["n"])
		}
		mu.Unlock()
		if first {
			<-release
		}
		return make([]updateResult, len(chs))
	}
	const n = 2*maxBatch + 6
	var wg sync.WaitGroup
	update := func(i int) {
		defer wg.Done()
		if _, err := c.update(t.Context(), "k", &session.Change{Add: map[string]int64{"n": int64(i)}}, apply); err != nil {
			t.Error(err)
		}
	}
	wg.Add(1)
	go update(0)
	for i := 1; i < n; i++ {
		// Wait until the previous one is in flight or queued, so that
		// the arrival order is i's.
		queued(t, &c, "k", i-1)
		wg.Add(1)
		go update(i)
	}
	queued(t, &c, "k", n-1)
	close(release)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if want := []int{1, maxBatch, maxBatch, 5}; !slices.Equal(sizes, want) {
		t.Errorf("batch sizes %v, want %v", sizes, want)
	}
	for i, v := range applied {
		if v != int64(i) {
			t.Fatalf("change %d applied in place %d", v, i)
		}
	}
	if len(applied) != n {
		t.Errorf("%d changes applied, want %d", len(applied), n)
	}
	// The last batch's callers return before its runner ends the flight.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		c.mu.Lock()
		left := len(c.keys)
		c.mu.Unlock()
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the flight did not end: %d keys left", left)
		}
	}
}
