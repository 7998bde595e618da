package combine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/seed013449c2/session/internal/sqltest"
)

// batch is one call of the fake run: the changes it got, on which
// context, and the channel that lets it finish.
type batch struct {
	ctx     context.Context
	chs     []int
	last    string
	release chan struct{}
}

// outcome is what one Update returned.
type outcome struct {
	ch  int
	rec string
	err error
}

// updater returns a function that sends change ch for key "k" through c
// in a goroutine of its own, its outcome to outcomes.
func updater(c *Combiner[int, string], run Run[int, string], outcomes chan<- outcome) func(context.Context, int) {
	return func(ctx context.Context, ch int) {
		go func() {
			rec, err := c.Update(ctx, "k", ch, run)
			outcomes <- outcome{ch, rec, err}
		}()
	}
}

// fakeRun hands every batch to the test and waits until the test releases
// it. An odd change succeeds ("after n"), an even one is refused, so that
// each change's result is its own; fail fails the whole batch.
func fakeRun(batches chan<- batch, fail error) Run[int, string] {
	return func(ctx context.Context, chs []int, last *string) ([]Result[string], error) {
		b := batch{ctx: ctx, chs: slices.Clone(chs), last: *last, release: make(chan struct{})}
		batches <- b
		<-b.release
		if fail != nil {
			return nil, fail
		}
		*last = fmt.Sprint("batch ", chs)
		results := make([]Result[string], len(chs))
		for i, ch := range chs {
			if ch%2 == 0 {
				results[i].Err = fmt.Errorf("change %d refused", ch)
			} else {
				results[i].Rec = fmt.Sprintf("after %d", ch)
			}
		}
		return results, nil
	}
}

// waitQueued waits until n updates of key wait for the next batch.
func waitQueued[C, R any](t *testing.T, c *Combiner[C, R], key string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		got := -1
		if q := c.keys[key]; q != nil {
			got = len(q.waiting)
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

// TestCombinerBatches: while a first batch runs, the updates that arrive
// queue; the next batch carries all of them in arrival order, on a context
// of its own with a deadline; each change gets its own result. A queued
// update whose context ends before a batch takes it is withdrawn with an
// error and never applied; one whose context ends after a batch took it
// still gets its result, and so does the next batch's leader, whose
// context ending does not stop the batch.
func TestCombinerBatches(t *testing.T) {
	var c Combiner[int, string]
	batches := make(chan batch)
	run := fakeRun(batches, nil)
	outcomes := make(chan outcome, 16)
	update := updater(&c, run, outcomes)

	update(t.Context(), 1)
	first := sqltest.Receive(t, "the first batch", batches)
	if !slices.Equal(first.chs, []int{1}) || first.last != "" {
		t.Fatalf("first batch %v (last %q), want [1] and a flight with no memory yet", first.chs, first.last)
	}

	// 2 leads the next batch and 6 is in it when their contexts end; 4
	// gives up while it waits.
	ctxs := map[int]context.Context{}
	cancels := map[int]context.CancelFunc{}
	for _, ch := range []int{2, 4, 6} {
		ctxs[ch], cancels[ch] = context.WithCancel(t.Context())
		defer cancels[ch]()
	}
	for ch := 2; ch <= 7; ch++ {
		ctx, ok := ctxs[ch]
		if !ok {
			ctx = t.Context()
		}
		update(ctx, ch)
		waitQueued(t, &c, "k", ch-1) // one at a time: arrival order is known
	}
	cancels[4]()
	if o := sqltest.Receive(t, "the withdrawn update", outcomes); o.ch != 4 || o.rec != "" ||
		!errors.Is(o.err, ErrWithdrawn) || !errors.Is(o.err, context.Canceled) {
		t.Fatalf("update %d = %q, %v; want 4 withdrawn with ErrWithdrawn and context.Canceled", o.ch, o.rec, o.err)
	}
	waitQueued(t, &c, "k", 5)

	close(first.release)
	if o := sqltest.Receive(t, "the first batch's result", outcomes); o.ch != 1 || o.rec != "after 1" || o.err != nil {
		t.Fatalf("update %d = %q, %v; want 1: after 1", o.ch, o.rec, o.err)
	}
	second := sqltest.Receive(t, "the second batch", batches)
	if second.last != "batch [1]" {
		t.Fatalf("the second batch sees %q of the flight's memory, want what the first left", second.last)
	}
	if !slices.Equal(second.chs, []int{2, 3, 5, 6, 7}) {
		t.Fatalf("second batch %v, want [2 3 5 6 7]: every queued change but the withdrawn 4, in arrival order", second.chs)
	}
	cancels[2]()
	cancels[6]()
	if err := second.ctx.Err(); err != nil {
		t.Errorf("the batch's context ended with its leader's: %v", err)
	}
	if dl, ok := second.ctx.Deadline(); !ok || time.Until(dl) > BatchTimeout {
		t.Errorf("the batch's context has deadline %v (%v), want one within BatchTimeout", dl, ok)
	}
	close(second.release)
	got := map[int]outcome{}
	for range 5 {
		o := sqltest.Receive(t, "the second batch's results", outcomes)
		got[o.ch] = o
	}
	for _, ch := range []int{2, 3, 5, 6, 7} {
		o := got[ch]
		switch {
		case ch%2 == 1 && (o.rec != fmt.Sprintf("after %d", ch) || o.err != nil):
			t.Errorf("update %d = %q, %v; want its own record", ch, o.rec, o.err)
		case ch%2 == 0 && (o.rec != "" || o.err == nil || o.err.Error() != fmt.Sprintf("change %d refused", ch)):
			t.Errorf("update %d = %q, %v; want its own refusal", ch, o.rec, o.err)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.keys) != 0 {
		t.Errorf("%d keys still in flight after the last batch", len(c.keys))
	}
}

// TestCombinerBatchError: an error of the batch itself fails every change
// it carries.
func TestCombinerBatchError(t *testing.T) {
	var c Combiner[int, string]
	batches := make(chan batch)
	failed := errors.New("transaction failed")
	run := fakeRun(batches, failed)
	outcomes := make(chan outcome, 4)
	spawn := updater(&c, run, outcomes)
	update := func(ch int) { spawn(t.Context(), ch) }
	update(1)
	first := sqltest.Receive(t, "the first batch", batches)
	update(3)
	waitQueued(t, &c, "k", 1)
	update(5)
	waitQueued(t, &c, "k", 2)
	close(first.release)
	second := sqltest.Receive(t, "the second batch", batches)
	if !slices.Equal(second.chs, []int{3, 5}) {
		t.Fatalf("second batch %v, want [3 5]", second.chs)
	}
	close(second.release)
	for range 3 {
		if o := sqltest.Receive(t, "the results", outcomes); !errors.Is(o.err, failed) || o.rec != "" {
			t.Errorf("update %d = %q, %v; want the batch's error", o.ch, o.rec, o.err)
		}
	}
}

// TestCombinerBatchCapAndDeadline: a batch takes at most maxBatch queued
// changes, the rest go in the next; a batch led for others ends at the
// latest deadline of its callers.
func TestCombinerBatchCapAndDeadline(t *testing.T) {
	var c Combiner[int, string]
	batches := make(chan batch, 4)
	outcomes := make(chan outcome, maxBatch+40)
	run := fakeRun(batches, nil)
	update := updater(&c, run, outcomes)
	update(t.Context(), 1)
	first := sqltest.Receive(t, "the first batch", batches)
	// The first to queue has a deadline; the others arrive in any order.
	later := time.Now().Add(time.Hour)
	ctx, cancel := context.WithDeadline(t.Context(), later)
	defer cancel()
	update(ctx, 2)
	waitQueued(t, &c, "k", 1)
	for ch := 3; ch <= maxBatch+40; ch++ {
		update(t.Context(), ch)
	}
	waitQueued(t, &c, "k", maxBatch+39)
	close(first.release)
	second := sqltest.Receive(t, "the second batch", batches)
	if len(second.chs) != maxBatch {
		t.Fatalf("second batch of %d changes, want %d", len(second.chs), maxBatch)
	}
	if dl, ok := second.ctx.Deadline(); !ok || !dl.Equal(later) {
		t.Errorf("the batch ends at %v (%v), want its latest caller's deadline %v", dl, ok, later)
	}
	close(second.release)
	third := sqltest.Receive(t, "the third batch", batches)
	if len(third.chs) != 39 {
		t.Fatalf("third batch of %d changes, want 39", len(third.chs))
	}
	if dl, ok := third.ctx.Deadline(); !ok || time.Until(dl) > BatchTimeout {
		t.Errorf("a batch of callers without deadlines ends at %v (%v), want within BatchTimeout", dl, ok)
	}
	close(third.release)
	for range maxBatch + 40 {
		sqltest.Receive(t, "a result", outcomes)
	}
}

// TestCombinerPanicLeavesTheKeyFree: a batch whose run panics fails its
// changes, passes the flight on, and raises the panic in its leader; the
// key takes updates again afterwards.
func TestCombinerPanicLeavesTheKeyFree(t *testing.T) {
	var c Combiner[int, string]
	boom := func(context.Context, []int, *string) ([]Result[string], error) { panic("boom") }
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Fatalf("recovered %v, want the run's panic", r)
			}
		}()
		c.Update(t.Context(), "k", 1, boom)
	}()
	ok := func(_ context.Context, chs []int, _ *string) ([]Result[string], error) {
		return []Result[string]{{Rec: "fine"}}, nil
	}
	done := make(chan string, 1)
	go func() { rec, _ := c.Update(t.Context(), "k", 2, ok); done <- rec }()
	if rec := sqltest.Receive(t, "an update after the panic", done); rec != "fine" {
		t.Fatalf("update after the panic = %q", rec)
	}
}

// TestCombinerBatchDeadlineCountsCallersWithout: a batch of a caller with
// a short deadline and one with none ends BatchTimeout from now, not at
// the short deadline, which would fail the other caller's change early.
func TestCombinerBatchDeadlineCountsCallersWithout(t *testing.T) {
	var c Combiner[int, string]
	batches := make(chan batch, 4)
	outcomes := make(chan outcome, 4)
	update := updater(&c, fakeRun(batches, nil), outcomes)
	update(t.Context(), 1)
	first := sqltest.Receive(t, "the first batch", batches)
	short, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	update(short, 3)
	waitQueued(t, &c, "k", 1)
	update(t.Context(), 5) // no deadline
	waitQueued(t, &c, "k", 2)
	close(first.release)
	second := sqltest.Receive(t, "the second batch", batches)
	defer close(second.release)
	dl, ok := second.ctx.Deadline()
	if least := time.Now().Add(BatchTimeout - time.Second); !ok || dl.Before(least) {
		t.Errorf("the batch ends at %v (deadline %v), want BatchTimeout from now: a caller without a deadline counts as that", dl, ok)
	}
}
