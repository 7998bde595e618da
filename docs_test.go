package session_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDocsNameRealTests: every test, fuzz target and benchmark that
// README.md, SECURITY.md and the module READMEs name as proof of a claim
// exists in the repository, so that a renamed or deleted test cannot leave a
// claim unbacked.
func TestDocsNameRealTests(t *testing.T) {
	defined := map[string]bool{}
	def := regexp.MustCompile(`(?m)^func ((?:Test|Fuzz|Benchmark)[A-Za-z0-9_]+)\(`)
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) && path != "." {
			return filepath.SkipDir
		}
		if !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range def.FindAllSubmatch(src, -1) {
			defined[string(m[1])] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	named := regexp.MustCompile("`((?:Test|Fuzz|Benchmark)[A-Z][A-Za-z0-9_]*)(\\*?)")
	docs := []string{"README.md", "SECURITY.md", "koa/README.md", "redisstore/README.md", "bench/README.md"}
	for _, doc := range docs {
		text, err := os.ReadFile(doc)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range named.FindAllSubmatch(text, -1) {
			name, prefix := string(m[1]), len(m[2]) > 0 // TestMySQL* names a family
			found := defined[name]
			for d := range defined {
				found = found || prefix && strings.HasPrefix(d, name)
			}
			if !found {
				t.Errorf("%s names %s, which no _test.go defines", doc, name+string(m[2]))
			}
		}
	}
}
