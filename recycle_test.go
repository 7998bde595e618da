package session_test

// Tests of the memory store's recycled change maps: every path on
// which a Session keeps, reuses or abandons its pending change (a commit
// as the response starts and a late one after it, a goroutine that
// outlives its handler, sessions from LoadID committed by hand, a commit
// refused with ErrTooLarge, Regenerate, Destroy, a Locked route whose
// store is the lease's) runs at once for many clients of one Manager, so
// that a map still referenced after it went back to the pool would show
// up as a key or a count in the wrong session, or as a race.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/seed013449c2/session"
)

// TestRecycleEveryPath: 12 clients, each its own session, 36 rounds
// each, all at once. A round commits a change as the response starts and
// another after it (both from recycled maps); a goroutine the handler
// leaves behind then finds the session closed and reads the committed
// values, not another request's; some rounds also commit a change through
// LoadID, fail a commit with ErrTooLarge (nothing of it stored, the next
// request starts clean), regenerate the id, run a Locked route, or destroy
// the session and start over. Every session must hold exactly its model.
func TestRecycleEveryPath(t *testing.T) {
	const clients, rounds = 12, 36
	type leftover struct {
		after chan struct{} // closed once the client has read the response
		done  chan error
	}
	var (
		srv       *server
		leftovers sync.Map // "c/i" -> *leftover
	)
	lateRoute := func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		c, i := r.PathValue("c"), r.PathValue("i")
		n, _ := strconv.Atoi(i)
		if _, err := s.Add("n-"+c, 1); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		s.Set("a-"+c+"-"+i, n)
		if err := http.NewResponseController(w).Flush(); err != nil { // commit, maps recycled
			t.Errorf("flush: %v", err)
		}
		// Late: maps from the pool, which other sessions fill meanwhile.
		s.Set("b-"+c+"-"+i, n)
		if _, err := s.Add("n-"+c, 1); err != nil {
			t.Errorf("late Add: %v", err)
		}
		if n%4 == 3 {
			s.Delete("a-" + c + "-" + i)
		}
		io.WriteString(w, "ok")
		lo, _ := leftovers.Load(c + "/" + i)
		go func(lo *leftover) {
			<-lo.after
			var errs []string
			if err := s.Set("x-"+c, n); !errors.Is(err, session.ErrSessionClosed) {
				errs = append(errs, fmt.Sprintf("Set after the last commit: %v", err))
			}
			if _, err := s.Add("n-"+c, 100); !errors.Is(err, session.ErrSessionClosed) {
				errs = append(errs, fmt.Sprintf("Add after the last commit: %v", err))
			}
			s.Delete("b-" + c + "-" + i)
			if got := s.GetInt("b-" + c + "-" + i); got != n {
				errs = append(errs, fmt.Sprintf("b-%s-%s reads %d after the last commit, want %d", c, i, got, n))
			}
			for _, k := range s.Keys() {
				if parts := strings.SplitN(k, "-", 3); k != "start" && (len(parts) < 2 || parts[1] != c) {
					errs = append(errs, fmt.Sprintf("key %q of another session seen", k))
				}
			}
			if len(errs) > 0 {
				lo.done <- errors.New(strings.Join(errs, "; "))
				return
			}
			lo.done <- nil
		}(lo.(*leftover))
	}
	lockedBody := func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		c := r.PathValue("c")
		s.Add("n-"+c, 3)
		s.Set("locked-"+c, r.PathValue("i"))
		http.NewResponseController(w).Flush() // committed through the lease's store
		s.Add("n-"+c, 1)                      // and once more by the outer commit
	}
	srv = newServer(t, session.Options{MaxSize: 16 << 10}, routes{
		"GET /start/{c}": func(w http.ResponseWriter, r *http.Request) {
			session.FromContext(r.Context()).Set("start", r.PathValue("c"))
		},
		"POST /w/{c}/{i}": lateRoute,
		"POST /big/{c}": func(w http.ResponseWriter, r *http.Request) {
			s := session.FromContext(r.Context())
			s.Add("n-"+r.PathValue("c"), 1000)
			s.Set("big-"+r.PathValue("c"), strings.Repeat("x", 20<<10))
		},
		"POST /regen/{c}/{i}": func(w http.ResponseWriter, r *http.Request) {
			s := session.FromContext(r.Context())
			s.Regenerate()
			s.Set("r-"+r.PathValue("c"), r.PathValue("i"))
		},
		"POST /locked/{c}/{i}": func(w http.ResponseWriter, r *http.Request) {
			srv.m.Locked(http.HandlerFunc(lockedBody)).ServeHTTP(w, r)
		},
		"POST /destroy/{c}": func(w http.ResponseWriter, r *http.Request) {
			s := session.FromContext(r.Context())
			s.Destroy()
			s.Set("start", r.PathValue("c")) // a new session, new id
		},
		"GET /show": showRoute,
	})

	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 99))
			cs := strconv.Itoa(c)
			id := srv.issue("/start/" + cs)
			model := map[string]any{"start": cs}
			cookieOf := func(res *http.Response) {
				if ck := cookieIn(res, cookieName); ck != nil && ck.Value != "" {
					id = ck.Value
				}
			}
			add := func(k string, d int) {
				v, _ := model[k].(int)
				model[k] = v + d
			}
			for i := range rounds {
				is := strconv.Itoa(i)
				lo := &leftover{after: make(chan struct{}), done: make(chan error, 1)}
				leftovers.Store(cs+"/"+is, lo)
				res, body := srv.do("POST", "/w/"+cs+"/"+is, nil, nil, cookieName+"="+id)
				if res.StatusCode != 200 || body != "ok" {
					t.Errorf("client %d round %d: %d %q", c, i, res.StatusCode, body)
					return
				}
				close(lo.after)
				if err := <-lo.done; err != nil {
					t.Errorf("client %d round %d: the leftover goroutine: %v", c, i, err)
				}
				add("n-"+cs, 2)
				model["b-"+cs+"-"+is] = i
				if i%4 != 3 {
					model["a-"+cs+"-"+is] = i
				}
				switch r := rng.IntN(6); r {
				case 0: // a change committed by hand, outside any request
					js, err := srv.m.LoadID(t.Context(), id)
					if err != nil {
						t.Errorf("client %d round %d: LoadID: %v", c, i, err)
						return
					}
					js.Set("d-"+cs, i)
					js.Add("n-"+cs, 5)
					if err := js.Commit(t.Context()); err != nil {
						t.Errorf("client %d round %d: Commit: %v", c, i, err)
					}
					if err := js.Set("d-"+cs, -1); !errors.Is(err, session.ErrSessionClosed) {
						t.Errorf("client %d round %d: Set after Commit: %v", c, i, err)
					}
					if got := js.GetInt("d-" + cs); got != i {
						t.Errorf("client %d round %d: d after Commit reads %d", c, i, got)
					}
					model["d-"+cs] = i
					add("n-"+cs, 5)
				case 1: // too large: nothing of the change is stored
					res, _ := srv.do("POST", "/big/"+cs, nil, nil, cookieName+"="+id)
					if res.StatusCode != 500 {
						t.Errorf("client %d round %d: too large a session answered %d", c, i, res.StatusCode)
					}
				case 2:
					res, _ := srv.do("POST", "/regen/"+cs+"/"+is, nil, nil, cookieName+"="+id)
					old := id
					cookieOf(res)
					if id == old {
						t.Errorf("client %d round %d: Regenerate kept the id", c, i)
					}
					model["r-"+cs] = is
				case 3:
					res, _ := srv.do("POST", "/locked/"+cs+"/"+is, nil, nil, cookieName+"="+id)
					if res.StatusCode != 200 {
						t.Errorf("client %d round %d: locked route %d", c, i, res.StatusCode)
					}
					add("n-"+cs, 4)
					model["locked-"+cs] = is
				case 4:
					if i%3 == 0 {
						res, _ := srv.do("POST", "/destroy/"+cs, nil, nil, cookieName+"="+id)
						old := id
						cookieOf(res)
						if id == old {
							t.Errorf("client %d round %d: Destroy kept the id", c, i)
						}
						model = map[string]any{"start": cs}
					}
				}
				if i%6 == 5 || i == rounds-1 {
					_, body := srv.send("/show", cookieName+"="+id)
					var got map[string]any
					if err := json.Unmarshal([]byte(body), &got); err != nil {
						t.Errorf("client %d: %q: %v", c, body, err)
						return
					}
					want := map[string]any{}
					for k, v := range model {
						if n, ok := v.(int); ok {
							want[k] = float64(n)
						} else {
							want[k] = v
						}
					}
					if !maps.Equal(got, want) {
						t.Errorf("client %d round %d: session holds\n%v\nwant\n%v", c, i, got, want)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	for {
		select {
		case err := <-srv.errs:
			if !errors.Is(err, session.ErrTooLarge) {
				t.Errorf("ErrorHandler: %v", err)
			}
			continue
		default:
		}
		break
	}
}
