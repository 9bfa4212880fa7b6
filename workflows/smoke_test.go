package workflows_test

import (
	"testing"

	"hpsync/workflows"
)

func TestSmoke(t *testing.T) {
	w := newWorld(hpNotStarted)
	s := newStory(t, w)
	s.check(func(st workflows.Status) { t.Logf("%+v", st) })
	s.run(input())
}
