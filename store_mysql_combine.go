package session

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Combining: the commits of one session that reach one process while an
// earlier one is in flight wait in that process, holding no connection, and
// then go to the database together, applied one after the other in a
// single transaction. Under a burst of one visitor's requests (parallel
// XHRs, a tab storm) the row lock is taken once per batch instead of once
// per request, so throughput grows with contention instead of collapsing,
// and each change is still applied whole, in arrival order, to the freshest
// state.

// combinedBatchTimeout bounds a batch led by a request that waited for it:
// the batch holds the changes of other requests too, so it does not run
// on what is left of the leader's own deadline.
const combinedBatchTimeout = 5 * time.Second

// errWithdrawn: an Update gave up while queued, before any batch took it;
// its change was not applied.
var errWithdrawn = errors.New("gave up waiting for the commit in flight; change not applied")

// updateCombiner batches the Updates of each key.
type updateCombiner struct {
	mu   sync.Mutex
	keys map[string]*updateQueue
}

// updateQueue is one key's flight: the batch that is running and the
// changes that arrived since, which the next leader takes.
type updateQueue struct {
	waiting []*pendingUpdate
}

// pendingUpdate is one Update waiting for its batch.
type pendingUpdate struct {
	ch   *Change
	done chan struct{} // closed when rec and err are set
	lead chan []*pendingUpdate
	rec  *Record
	err  error
}

// batchResult is what a batch gives each of its changes.
type batchResult struct {
	rec *Record
	err error
}

// runBatch applies chs, in order, in one transaction and returns one result
// per change; an error of its own fails every change of the batch.
type runBatch func(ctx context.Context, chs []*Change) ([]batchResult, error)

// update applies ch under key through run, batched with the Updates of key
// that arrive while another batch of key is in flight.
func (c *updateCombiner) update(ctx context.Context, key string, ch *Change, run runBatch) (*Record, error) {
	me := &pendingUpdate{ch: ch, done: make(chan struct{})}
	c.mu.Lock()
	if c.keys == nil {
		c.keys = make(map[string]*updateQueue)
	}
	q, busy := c.keys[key]
	if !busy {
		c.keys[key] = &updateQueue{}
		c.mu.Unlock()
		c.lead(ctx, key, []*pendingUpdate{me}, run)
		return me.rec, me.err
	}
	me.lead = make(chan []*pendingUpdate, 1)
	q.waiting = append(q.waiting, me)
	c.mu.Unlock()

	select {
	case batch := <-me.lead:
		// The batch holds other requests' changes: it gets a deadline of
		// its own rather than whatever is left of this one's.
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), combinedBatchTimeout)
		c.lead(bctx, key, batch, run)
		cancel()
	case <-me.done:
	case <-ctx.Done():
		if c.withdraw(key, me) {
			return nil, fmt.Errorf("%w: %w", errWithdrawn, ctx.Err())
		}
		// Taken into a batch already: its outcome is this change's, and
		// if this one leads it, the others' changes are owed a run.
		select {
		case batch := <-me.lead:
			bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), combinedBatchTimeout)
			c.lead(bctx, key, batch, run)
			cancel()
		case <-me.done:
		}
	}
	<-me.done
	return me.rec, me.err
}

// lead runs batch, then hands the changes that arrived meanwhile to the
// first of them, which leads the next batch, or ends the key's flight.
func (c *updateCombiner) lead(ctx context.Context, key string, batch []*pendingUpdate, run runBatch) {
	chs := make([]*Change, len(batch))
	for i, p := range batch {
		chs[i] = p.ch
	}
	results, err := run(ctx, chs)
	c.mu.Lock()
	q := c.keys[key]
	next := q.waiting
	q.waiting = nil
	if len(next) == 0 {
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
			p.rec, p.err = results[i].rec, results[i].err
		}
		close(p.done)
	}
}

// withdraw takes p out of key's queue if no batch has taken it yet.
func (c *updateCombiner) withdraw(key string, p *pendingUpdate) bool {
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

// applyAll applies chs in order to rec, as a batch does: each change sees
// the record the previous ones left, a refused change leaves it as it was,
// and once a change leaves no values the record is gone for the rest. It
// returns one result per change and the record to store, nil when it is
// to be deleted.
func applyAll(rec *Record, chs []*Change, notFound error, check func(*Record) error) ([]batchResult, *Record) {
	results := make([]batchResult, len(chs))
	cur := rec
	for i, ch := range chs {
		if cur == nil {
			results[i].err = notFound
			continue
		}
		next, err := ch.Apply(cur)
		if err == nil && len(next.Values) > 0 {
			err = check(next)
		}
		if err != nil {
			results[i].err = err
			continue
		}
		results[i].rec = next
		if len(next.Values) == 0 {
			cur = nil
			continue
		}
		cur = next
	}
	return results, cur
}
