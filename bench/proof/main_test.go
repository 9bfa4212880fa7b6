package main

import (
	"bytes"
	"io"
	"os"
	"runtime"
	"slices"
	"testing"
)

// The benchmark itself runs only as a command; these check its helpers.

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"1GiB": 1 << 30, "64MiB": 64 << 20, "512KiB": 512 << 10, "4096": 4096, "10B": 10,
		"2gib": 2 << 30, "1MB": 1e6, " 3 MiB ": 3 << 20,
	} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "-1MiB", "0", "1TiB", "1.5GiB", "99999999999GiB"} {
		if got, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", in, got)
		}
	}
	if s := formatSize(64 << 20); s != "64MiB" {
		t.Errorf("formatSize = %s", s)
	}
}

func TestPayloadIsSeededAndExact(t *testing.T) {
	a, _ := io.ReadAll(payload(7, 100_001))
	b, _ := io.ReadAll(payload(7, 100_001))
	c, _ := io.ReadAll(payload(8, 100_001))
	if len(a) != 100_001 || !bytes.Equal(a, b) || bytes.Equal(a, c) {
		t.Fatalf("len %d, same seed equal %v, other seed equal %v", len(a), bytes.Equal(a, b), bytes.Equal(a, c))
	}
}

func TestWorkerEnvReplacesConfig(t *testing.T) {
	env := workerEnv([]string{"PATH=/bin", "SANDBOX=true", "STATUS_MAP_FILE=/x", "HOME=/root"}, map[string]string{"SANDBOX": "false"})
	slices.Sort(env)
	if want := []string{"HOME=/root", "PATH=/bin", "SANDBOX=false"}; !slices.Equal(env, want) {
		t.Fatalf("env %q, want %q", env, want)
	}
}

func TestReadMem(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc")
	}
	rss, hwm, err := readMem(os.Getpid())
	if err != nil || rss <= 0 || hwm < rss {
		t.Fatalf("rss %d hwm %d: %v", rss, hwm, err)
	}
	if _, err := cpuTime(os.Getpid()); err != nil {
		t.Fatal(err)
	}
}
