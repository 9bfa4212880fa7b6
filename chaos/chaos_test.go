package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"hpsync/internal/sandbox/faults"
)

// TestChaosSmall is the CI size of the chaos run: four linked tasks through
// the whole story, the worker SIGKILLed and restarted three times, the dev
// server SIGKILLed and restarted once on its database file, faults on both
// APIs' integration traffic. It fails on any duplicate, loss, wrong final
// state, corrupt proof or story that did not complete.
func TestChaosSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos run needs the Temporal dev server and a worker process")
	}
	if runtime.GOOS != "linux" {
		t.Skip("Linux only (/proc, SIGKILL)")
	}
	o := defaults()
	o.tasks, o.kills, o.concurrency, o.seed = 4, 3, 4, 20250921
	// The kills come early enough that the stalls they cause (an activity
	// lost with the worker is retried after its start-to-close timeout)
	// overlap instead of adding up.
	o.killFrom, o.killTo = 0.1, 0.55
	o.stepTimeout = 5 * time.Minute
	o.timeout = 12 * time.Minute
	o.quiesce = 3 * time.Minute
	var logBuf bytes.Buffer
	var logw io.Writer = &logBuf
	if testing.Verbose() {
		logw = os.Stderr
	}
	rep, err := run(context.Background(), o, logw)
	var out strings.Builder
	rep.print(&out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatalf("chaos run: %v\n%s", err, logBuf.String())
	}
	if !rep.ok() {
		t.Fatalf("chaos run failed (log and data kept in %s)\n%s", rep.Dir, logBuf.String())
	}
	if rep.Kills != o.kills || rep.ServerRestarts != 1 {
		t.Errorf("kills %d (want %d), server restarts %d (want 1)", rep.Kills, o.kills, rep.ServerRestarts)
	}
	if rep.Actions+rep.Hops == 0 || rep.Hops != 10*o.tasks {
		t.Errorf("events: %d actions, %d hops (want %d hops)", rep.Actions, rep.Hops, 10*o.tasks)
	}
	fired := int64(0)
	for _, c := range rep.Faults {
		for _, n := range c {
			fired += n
		}
	}
	if fired == 0 {
		t.Error("no fault fired")
	}
}

func TestDefaultFaultsHitOnlyTheIntegration(t *testing.T) {
	s, err := faults.Parse(DefaultFaults)
	if err != nil {
		t.Fatal(err)
	}
	for _, side := range []string{faults.Hyperproof, faults.ServiceNow} {
		rules := s.For(side)
		kinds := map[faults.Kind]bool{}
		for _, r := range rules {
			kinds[r.Kind] = true
			if r.As == "" {
				t.Errorf("%s rule %s hits every caller", side, r)
			}
		}
		for _, k := range []faults.Kind{faults.Kind5xx, faults.Kind429, faults.KindReset, faults.KindCommitLost, faults.KindLatency} {
			if !kinds[k] {
				t.Errorf("%s: no %s rule", side, k)
			}
		}
	}
}

func TestParseFlags(t *testing.T) {
	var errb bytes.Buffer
	o, err := parseFlags([]string{"-tasks", "7", "-kills", "2", "-seed", "9", "-faults", "", "-no-server-restart"}, &errb)
	if err != nil || o.tasks != 7 || o.kills != 2 || o.seed != 9 || o.faults != "" || o.serverRestart {
		t.Fatalf("%+v %v", o, err)
	}
	if _, err := parseFlags([]string{"-faults", "servicenow:*:boom"}, &errb); err == nil {
		t.Fatal("a bad fault spec was accepted")
	}
	if _, err := parseFlags([]string{"-tasks", "0"}, &errb); err == nil {
		t.Fatal("-tasks 0 was accepted")
	}
}
