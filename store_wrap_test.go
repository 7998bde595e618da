package session_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/seed013449c2/session"
)

// wrappingStore wraps the memory store by embedding it, as an app adds
// metrics, fault injection or encryption to a store, and counts the calls
// of the methods it overrides.
type wrappingStore struct {
	*session.MemoryStore
	loads, updates, renames atomic.Int64
}

func (c *wrappingStore) Load(ctx context.Context, key string) (*session.Record, error) {
	c.loads.Add(1)
	return c.MemoryStore.Load(ctx, key)
}

func (c *wrappingStore) Update(ctx context.Context, key string, ch *session.Change) (*session.Record, error) {
	c.updates.Add(1)
	return c.MemoryStore.Update(ctx, key, ch)
}

func (c *wrappingStore) Rename(ctx context.Context, oldKey, newKey string, ch *session.Change) (*session.Record, error) {
	c.renames.Add(1)
	return c.MemoryStore.Rename(ctx, oldKey, newKey, ch)
}

// TestEmbeddingStoreIsCalled: the middleware calls the methods of a store
// that embeds the memory store to wrap them, never the embedded store's
// own fast paths around them, on a session small and large alike.
func TestEmbeddingStoreIsCalled(t *testing.T) {
	st := &wrappingStore{MemoryStore: session.NewMemoryStore(session.MemoryOptions{})}
	t.Cleanup(func() { st.Close() })
	srv := newServer(t, session.Options{Store: st}, routes{
		"/set": func(w http.ResponseWriter, r *http.Request) {
			s := session.FromContext(r.Context())
			for i := range 40 { // past the size where the store keeps a tree
				s.Set("k"+string(rune('a'+i%26))+string(rune('a'+i/26)), i)
			}
		},
		"/add": func(w http.ResponseWriter, r *http.Request) {
			if _, err := session.FromContext(r.Context()).Add("n", 1); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
			}
		},
		"/login": func(w http.ResponseWriter, r *http.Request) {
			session.FromContext(r.Context()).Regenerate()
		},
	})
	srv.get("/set")
	for range 3 {
		srv.get("/add")
	}
	srv.get("/login")
	if l, u, rn := st.loads.Load(), st.updates.Load(), st.renames.Load(); l != 4 || u != 3 || rn != 1 {
		t.Errorf("the wrapper saw %d loads, %d updates, %d renames; want 4, 3, 1", l, u, rn)
	}
	srv.noErr()
}
