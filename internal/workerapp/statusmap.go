package workerapp

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"hpsync/internal/servicenow"
	"hpsync/internal/statusmap"
)

// MapReport is the status map checked against the instance's real state
// choices (sys_choice) of each table.
type MapReport struct {
	// Unknown lists, per table, map values the instance does not have: the
	// map is rejected.
	Unknown map[string][]string
	// Ungrouped lists, per table, instance states in no group: tasks in them
	// keep their Hyperproof status and show the state as unmapped.
	Ungrouped map[string][]string
}

// CheckMap compares the map with the instance's state choices.
func CheckMap(ctx context.Context, sn *servicenow.Client, m statusmap.Map) (MapReport, error) {
	rep := MapReport{Unknown: map[string][]string{}, Ungrouped: map[string][]string{}}
	for _, table := range m.Tables() {
		var choices []servicenow.Choice
		err := untilSettled(ctx, func() (err error) {
			choices, err = sn.ListChoices(ctx, table, "state")
			return err
		})
		if err != nil {
			return rep, fmt.Errorf("read the state choices of %s: %w", table, err)
		}
		if len(choices) == 0 {
			// An empty answer can be an ACL hiding sys_choice as well as a
			// table without states; neither proves the map wrong.
			return rep, fmt.Errorf("the instance lists no state choices for %s (is sys_choice readable by the integration user?)", table)
		}
		have := map[string]bool{}
		for _, c := range choices {
			have[c.Value] = true
			if _, ok := m.GroupOf(table, c.Value); !ok {
				rep.Ungrouped[table] = append(rep.Ungrouped[table], fmt.Sprintf("%s (%s)", c.Value, c.Label))
			}
		}
		t := m[table]
		for _, group := range [][]string{t.Todo, t.InProgress, t.Completed} {
			for _, v := range group {
				if !have[v] {
					rep.Unknown[table] = append(rep.Unknown[table], v)
				}
			}
		}
	}
	return rep, nil
}

// Err is the rejection of a map that names states the instance lacks.
func (r MapReport) Err() error {
	var parts []string
	for _, table := range sortedTables(r.Unknown) {
		parts = append(parts, fmt.Sprintf("%s has no state %s", table, strings.Join(quote(r.Unknown[table]), ", ")))
	}
	if len(parts) == 0 {
		return nil
	}
	return fmt.Errorf("status map: %s", strings.Join(parts, "; "))
}

// CheckStatusMap runs CheckMap at start: unknown states stop the worker,
// states in no group are logged.
func CheckStatusMap(ctx context.Context, sn *servicenow.Client, m statusmap.Map, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rep, err := CheckMap(ctx, sn, m)
	if err != nil {
		return fmt.Errorf("STATUS_MAP_FILE: %w", err)
	}
	if err := rep.Err(); err != nil {
		return fmt.Errorf("STATUS_MAP_FILE: %w", err)
	}
	for _, table := range sortedTables(rep.Ungrouped) {
		log.Warn("states in no group of the status map: tasks in them keep their Hyperproof status", "table", table, "states", rep.Ungrouped[table])
	}
	return nil
}

func quote(vs []string) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = fmt.Sprintf("%q", v)
	}
	return out
}

func sortedTables(m map[string][]string) []string { return slices.Sorted(maps.Keys(m)) }
