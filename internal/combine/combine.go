// Package combine batches the updates of one key that reach one process
// while an earlier one is in flight.
//
// The commits of one session that arrive while one is running wait in the
// process, holding no connection, and then go to the database together,
// applied one after the other in a single transaction. Under a burst of one
// visitor's requests (parallel XHRs, a tab storm) the row lock is taken once
// per batch instead of once per request, so throughput grows with
// contention instead of collapsing, and each change is still applied whole,
// in arrival order, to the freshest state.
package combine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// BatchTimeout bounds a batch led by a caller that waited for it when none
// of its callers has a deadline: the batch holds the changes of other
// callers too, so it does not run on what is left of the leader's own
// context alone (see batchContext).
const BatchTimeout = 5 * time.Second

// maxBatch is the most changes one batch takes: the rest wait for the next,
// so that one visitor's burst never becomes one transaction of unbounded
// size.
const maxBatch = 64

// ErrWithdrawn: an update gave up while queued, before any batch took it;
// its change was not applied.
var ErrWithdrawn = errors.New("gave up waiting for the commit in flight; change not applied")

// Result is what a batch gives one of its changes.
type Result[R any] struct {
	Rec R
	Err error
}

// Run applies chs, in order, in one step (a transaction) and returns one
// result per change; an error of its own fails every change of the batch.
// last is the flight's memory: the zero R for its first batch, whose one
// change found nothing in flight, and then whatever the previous batch of
// the flight left there (what it stored, so that the next batch can check
// it in the same step as its write instead of reading it again).
type Run[C, R any] func(ctx context.Context, chs []C, last *R) ([]Result[R], error)

// Combiner batches the updates of each key. The zero value is ready to use.
type Combiner[C, R any] struct {
	mu   sync.Mutex
	keys map[string]*queue[C, R]
}

// queue is one key's flight: the changes that arrived since the running
// batch started, which the next leader takes.
type queue[C, R any] struct {
	waiting []*pending[C, R]
	last    R // see Run
}

// pending is one update waiting for its batch.
type pending[C, R any] struct {
	ctx  context.Context // the caller's, for the batch's deadline
	ch   C
	done chan struct{} // closed when rec and err are set
	lead chan []*pending[C, R]
	rec  R
	err  error
}

// Update applies ch under key through run, batched with the updates of key
// that arrive while another batch of key is in flight. The caller that
// finds no batch in flight runs its change at once, on ctx; the others
// queue, and the first of them leads the next batch, with all the changes
// queued by then (at most maxBatch), on a context that ends with the
// latest deadline of the batch's callers (see BatchContext). A
// queued caller whose ctx ends before a batch takes its change withdraws
// it and gets an error wrapping ErrWithdrawn and ctx.Err(); once taken,
// the change's outcome is the caller's, whenever it comes.
func (c *Combiner[C, R]) Update(ctx context.Context, key string, ch C, run Run[C, R]) (R, error) {
	me := &pending[C, R]{ctx: ctx, ch: ch, done: make(chan struct{})}
	c.mu.Lock()
	if c.keys == nil {
		c.keys = make(map[string]*queue[C, R])
	}
	q, busy := c.keys[key]
	if !busy {
		c.keys[key] = &queue[C, R]{}
		c.mu.Unlock()
		c.lead(ctx, key, []*pending[C, R]{me}, run)
		return me.rec, me.err
	}
	me.lead = make(chan []*pending[C, R], 1)
	q.waiting = append(q.waiting, me)
	c.mu.Unlock()

	select {
	case batch := <-me.lead:
		c.leadDetached(ctx, key, batch, run)
	case <-me.done:
	case <-ctx.Done():
		if c.withdraw(key, me) {
			var zero R
			return zero, fmt.Errorf("%w: %w", ErrWithdrawn, ctx.Err())
		}
		// Taken into a batch already: its outcome is this change's, and
		// if this one leads it, the others' changes are owed a run.
		select {
		case batch := <-me.lead:
			c.leadDetached(ctx, key, batch, run)
		case <-me.done:
		}
	}
	<-me.done
	return me.rec, me.err
}

// leadDetached runs a batch that holds other callers' changes on
// BatchContext's context.
func (c *Combiner[C, R]) leadDetached(ctx context.Context, key string, batch []*pending[C, R], run Run[C, R]) {
	bctx, cancel := BatchContext(ctx, batch, func(p *pending[C, R]) context.Context { return p.ctx })
	defer cancel()
	c.lead(bctx, key, batch, run)
}

// BatchContext is the context of a batch that holds the changes of
// several callers, ctxOf giving each one's context: free of ctx's
// cancellation (the leader's going away must not fail the others), and
// ending at the latest of the callers' deadlines, a caller without one
// counting as BatchTimeout from now, so that no caller is failed before
// its own deadline and none waits past the one that waits longest.
func BatchContext[P any](ctx context.Context, batch []P, ctxOf func(P) context.Context) (context.Context, context.CancelFunc) {
	var latest time.Time
	for _, p := range batch {
		d, ok := ctxOf(p).Deadline()
		if !ok {
			d = time.Now().Add(BatchTimeout)
		}
		if d.After(latest) {
			latest = d
		}
	}
	return context.WithDeadline(context.WithoutCancel(ctx), latest)
}

// lead runs batch, then hands the changes that arrived meanwhile to the
// first of them, which leads the next batch, or ends the key's flight.
func (c *Combiner[C, R]) lead(ctx context.Context, key string, batch []*pending[C, R], run Run[C, R]) {
	chs := make([]C, len(batch))
	for i, p := range batch {
		chs[i] = p.ch
	}
	c.mu.Lock()
	q := c.keys[key]
	c.mu.Unlock()
	// One batch of a key runs at a time: q.last is this batch's alone.
	results, panicked, err := runGuarded(ctx, chs, &q.last, run)
	c.mu.Lock()
	n := min(len(q.waiting), maxBatch)
	next := slices.Clone(q.waiting[:n])
	clear(q.waiting[:n]) // the queue no longer holds the callers it hands on
	q.waiting = q.waiting[n:]
	if n == 0 {
		delete(c.keys, key)
	}
	c.mu.Unlock()
	if len(next) > 0 {
		next[0].lead <- next
	}
	for i, p := range batch {
		if err != nil {
			p.err = err
		} else {
			p.rec, p.err = results[i].Rec, results[i].Err
		}
		close(p.done)
	}
	if panicked != nil {
		panic(panicked) // after the flight went on: the key is not left busy
	}
}

// runGuarded calls run, turning a panic into an error for the batch (and
// returning it, to be raised again once the flight has gone on).
func runGuarded[C, R any](ctx context.Context, chs []C, last *R, run Run[C, R]) (results []Result[R], panicked any, err error) {
	defer func() {
		if r := recover(); r != nil {
			panicked, err = r, fmt.Errorf("batch failed: panic: %v", r)
		}
	}()
	results, err = run(ctx, chs, last)
	return results, nil, err
}

// withdraw takes p out of key's queue if no batch has taken it yet.
func (c *Combiner[C, R]) withdraw(key string, p *pending[C, R]) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	q := c.keys[key]
	if q == nil {
		return false
	}
	for i, w := range q.waiting {
		if w == p {
			q.waiting = append(q.waiting[:i], q.waiting[i+1:]...)
			return true
		}
	}
	return false
}
