package redisstore

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/seed013449c2/session"
	"github.com/seed013449c2/session/internal/combine"
)

// Combining: the Updates of one session that reach this process while an
// earlier one of it is in flight wait here, holding no connection, and go
// to Redis together as one script call that applies them one after the
// other, in arrival order, each whole or not at all, each refused or not
// on its own (see updateScript). Under a burst of one visitor's requests
// (parallel XHRs, many tabs) Redis runs one script per batch instead of
// one per request, and the process sends one command instead of many. A
// batch holds at most maxBatch changes; the rest wait for the next.
//
// A lease's store does not combine: its writes check the lease's token,
// and it is the only writer of its session anyway.
//
// Deadlines: the first Update of a burst runs at once, on its own context.
// A batch runs on a context of its own whose deadline is the latest of its
// callers' (combine.BatchContext: a caller without one counts as
// combine.BatchTimeout from now), and
// each caller returns at its own context's end even while its batch is in
// flight, with an error saying that the outcome is unknown, as a call that
// timed out mid-way says. So StoreTimeout bounds every Update, combined or
// not. A caller whose context ends before a batch takes its change
// withdraws it: the change is not applied.

// maxBatch caps the changes of one batch. A script blocks the whole Redis
// server while it runs, so a burst of one session's requests (which one
// visitor can send at will) goes as several scripts of at most maxBatch
// changes, with other clients' commands between them, rather than as one
// script as long as the burst.
const maxBatch = 64

// errWithdrawn: an Update gave up while queued, before any batch took it;
// its change was not applied.
var errWithdrawn = errors.New("gave up waiting for the write in flight; change not applied")

// combiner batches the Updates of each key.
type combiner struct {
	mu   sync.Mutex
	keys map[string]*flight // keys with a batch in flight
}

// flight is one key's run of batches: the changes that arrived since the
// running batch started, which the next batch takes.
type flight struct {
	waiting []*pending
}

// pending is one Update waiting for its batch.
type pending struct {
	ctx  context.Context
	ch   *session.Change
	done chan struct{} // closed when res is set
	res  updateResult
}

// updateResult is what a batch gives one of its changes.
type updateResult struct {
	rec *session.Record
	err error
}

// applyFunc applies chs under key, in order, and returns one result per
// change.
type applyFunc func(ctx context.Context, key string, chs []*session.Change) []updateResult

// update applies ch under key through apply, batched with the Updates of
// key that arrive while another batch of key is in flight.
func (c *combiner) update(ctx context.Context, key string, ch *session.Change, apply applyFunc) (*session.Record, error) {
	c.mu.Lock()
	if c.keys == nil {
		c.keys = make(map[string]*flight)
	}
	f, busy := c.keys[key]
	if !busy {
		c.keys[key] = &flight{}
		c.mu.Unlock()
		res := apply(ctx, key, []*session.Change{ch})[0]
		c.next(key, apply)
		return res.rec, res.err
	}
	// A queued change can outlive this call (its caller may give up while
	// its batch runs), and ch is the caller's again when Update returns:
	// the batch keeps a copy.
	me := &pending{ctx: ctx, ch: ch.Clone(), done: make(chan struct{})}
	f.waiting = append(f.waiting, me)
	c.mu.Unlock()

	select {
	case <-me.done:
		return me.res.rec, me.res.err
	case <-ctx.Done():
	}
	if c.withdraw(key, me) {
		return nil, fmt.Errorf("redisstore: update: %w: %w", errWithdrawn, ctx.Err())
	}
	select {
	case <-me.done: // it ended meanwhile
		return me.res.rec, me.res.err
	default:
	}
	return nil, fmt.Errorf("redisstore: update: %w while the write was in flight: it may or may not have been applied", ctx.Err())
}

// next takes the changes that arrived while key's batch ran and runs them
// as the next batch, in a goroutine of their own, or ends key's flight.
func (c *combiner) next(key string, apply applyFunc) {
	if batch := c.take(key); len(batch) > 0 {
		go c.run(key, batch, apply)
	}
}

// take returns up to maxBatch of the changes waiting under key, in
// arrival order, leaving out those whose callers gave up, and ends key's
// flight when none is left.
func (c *combiner) take(key string) []*pending {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.keys[key]
	batch := make([]*pending, 0, min(len(f.waiting), maxBatch))
	n := 0 // waiting changes looked at
	for _, p := range f.waiting {
		if len(batch) == maxBatch {
			break
		}
		n++
		if err := p.ctx.Err(); err != nil {
			p.res.err = fmt.Errorf("redisstore: update: %w: %w", errWithdrawn, err)
			close(p.done)
			continue
		}
		batch = append(batch, p)
	}
	clear(f.waiting[:n]) // let the taken ones go
	f.waiting = f.waiting[n:]
	if len(batch) == 0 {
		delete(c.keys, key) // nothing was left to look at
	}
	return batch
}

// run applies batch and the batches that follow it until key's flight
// ends.
func (c *combiner) run(key string, batch []*pending, apply applyFunc) {
	for len(batch) > 0 {
		ctx, cancel := combine.BatchContext(batch[0].ctx, batch, func(p *pending) context.Context { return p.ctx })
		chs := make([]*session.Change, len(batch))
		for i, p := range batch {
			chs[i] = p.ch
		}
		results := apply(ctx, key, chs)
		cancel()
		for i, p := range batch {
			p.res = results[i]
			close(p.done)
		}
		batch = c.take(key)
	}
}

// withdraw takes p out of key's queue if no batch has taken it yet.
func (c *combiner) withdraw(key string, p *pending) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.keys[key]
	if f == nil {
		return false
	}
	for i, w := range f.waiting {
		if w == p {
			f.waiting = append(f.waiting[:i], f.waiting[i+1:]...)
			return true
		}
	}
	return false
}
