package statusmap

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// interfacesDefault is the built-in map exactly as shared/design/interfaces.md
// prints it.
const interfacesDefault = `{
  "sc_task":       {"todo": ["1", "-5"], "inProgress": ["2"],          "completed": ["3", "4", "7"]},
  "incident_task": {"todo": ["1", "-5"], "inProgress": ["2"],          "completed": ["3", "4", "7"]},
  "problem_task":  {"todo": ["151"],     "inProgress": ["152", "154"], "completed": ["157"]}
}`

func TestDefaultEqualsInterfaces(t *testing.T) {
	var want Map
	if err := json.Unmarshal([]byte(interfacesDefault), &want); err != nil {
		t.Fatal(err)
	}
	if got := Default(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Default() = %#v\nwant %#v", got, want)
	}
	if err := Default().Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	// The document itself parses strictly to the same map.
	parsed, err := Parse([]byte(interfacesDefault))
	if err != nil {
		t.Fatalf("Parse(interfaces.md default) = %v", err)
	}
	if !reflect.DeepEqual(parsed, want) {
		t.Fatalf("Parse(interfaces.md default) = %#v", parsed)
	}
}

func TestDefaultIsAFreshCopy(t *testing.T) {
	d := Default()
	d["sc_task"].Completed[0] = "changed"
	delete(d, "problem_task")
	if again := Default(); again["sc_task"].Completed[0] != "3" || len(again) != 3 {
		t.Fatalf("Default() shares state between calls: %#v", again)
	}
}

func TestParseMerge(t *testing.T) {
	tests := []struct {
		name string
		file string
		want func() Map
	}{
		{
			name: "empty object keeps every built-in entry",
			file: `{}`,
			want: Default,
		},
		{
			name: "one table replaced, others built-in",
			file: `{"sc_task": {"todo": ["-5"], "inProgress": ["2", "10"], "completed": ["3"]}}`,
			want: func() Map {
				m := Default()
				m["sc_task"] = Table{Todo: []string{"-5"}, InProgress: []string{"2", "10"}, Completed: []string{"3"}}
				return m
			},
		},
		{
			name: "todo may be left out",
			file: `{"problem_task": {"inProgress": ["152"], "completed": ["157", "158"]}}`,
			want: func() Map {
				m := Default()
				m["problem_task"] = Table{InProgress: []string{"152"}, Completed: []string{"157", "158"}}
				return m
			},
		},
		{
			name: "empty todo list is the same as none",
			file: ` {"incident_task": {"todo": [], "inProgress": ["2"], "completed": ["3"]}} ` + "\n",
			want: func() Map {
				m := Default()
				m["incident_task"] = Table{InProgress: []string{"2"}, Completed: []string{"3"}}
				return m
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.file))
			if err != nil {
				t.Fatalf("Parse = %v", err)
			}
			if want := tt.want(); !reflect.DeepEqual(got, want) {
				t.Fatalf("Parse = %#v\nwant  %#v", got, want)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		name string
		file string
		want string // the whole error, or a part of it when partial
		part bool
	}{
		{"unknown key at top level", `{"change_task": {"inProgress": ["2"], "completed": ["3"]}}`,
			`status map: unknown table "change_task" (want sc_task, incident_task, problem_task)`, false},
		{"unknown key at table level", `{"sc_task": {"inProgress": ["2"], "completed": ["3"], "done": ["4"]}}`,
			`status map: sc_task: unknown key "done" (want todo, inProgress, completed)`, false},
		{"key at group level (object instead of list)", `{"sc_task": {"inProgress": {"values": ["2"]}, "completed": ["3"]}}`,
			`status map: sc_task: inProgress must be a list of state values (strings), not an object`, false},
		{"key inside a group's values", `{"sc_task": {"inProgress": [{"value": "2"}], "completed": ["3"]}}`,
			`status map: sc_task: inProgress: values must be strings, not an object`, false},
		{"table not an object", `{"sc_task": ["2"]}`,
			`status map: sc_task: must be an object with todo, inProgress and completed, not a list`, false},
		{"value in two groups", `{"sc_task": {"todo": ["1"], "inProgress": ["2", "3"], "completed": ["3", "4"]}}`,
			`status map: sc_task: value "3" is in both inProgress and completed`, false},
		{"value in todo and completed", `{"incident_task": {"todo": ["7"], "inProgress": ["2"], "completed": ["7"]}}`,
			`status map: incident_task: value "7" is in both todo and completed`, false},
		{"value twice in one group", `{"sc_task": {"inProgress": ["2", "2"], "completed": ["3"]}}`,
			`status map: sc_task: value "2" appears twice in inProgress`, false},
		{"missing inProgress", `{"problem_task": {"todo": ["151"], "completed": ["157"]}}`,
			`status map: problem_task: inProgress needs at least one value`, false},
		{"empty inProgress", `{"problem_task": {"todo": ["151"], "inProgress": [], "completed": ["157"]}}`,
			`status map: problem_task: inProgress needs at least one value`, false},
		{"missing completed", `{"sc_task": {"todo": ["1"], "inProgress": ["2"]}}`,
			`status map: sc_task: completed needs at least one value`, false},
		{"empty string", `{"sc_task": {"todo": [""], "inProgress": ["2"], "completed": ["3"]}}`,
			`status map: sc_task: todo: empty value`, false},
		{"padded string", `{"sc_task": {"inProgress": [" 2"], "completed": ["3"]}}`,
			`status map: sc_task: inProgress: value " 2" has leading or trailing spaces`, false},
		{"number instead of string", `{"sc_task": {"inProgress": [2], "completed": ["3"]}}`,
			`status map: sc_task: inProgress: value 2 must be a string (write "2")`, false},
		{"null value", `{"sc_task": {"inProgress": ["2"], "completed": [null]}}`,
			`status map: sc_task: completed: values must be strings, not null`, false},
		{"null group", `{"sc_task": {"inProgress": null, "completed": ["3"]}}`,
			`status map: sc_task: inProgress must be a list of state values (strings), not null`, false},
		{"table named twice", `{"sc_task": {"inProgress": ["2"], "completed": ["3"]}, "sc_task": {"inProgress": ["2"], "completed": ["4"]}}`,
			`status map: table sc_task is named twice`, false},
		{"group named twice", `{"sc_task": {"inProgress": ["2"], "completed": ["3"], "inProgress": ["5"]}}`,
			`status map: sc_task: inProgress is named twice`, false},
		{"top level is a list", `[]`, `status map: the file must be a JSON object, not a list`, false},
		{"empty file", ``, `status map: invalid JSON: unexpected end of file`, false},
		{"malformed JSON", `{"sc_task": {"inProgress": ["2",], "completed": ["3"]}}`,
			`status map: invalid JSON at byte `, true},
		{"truncated JSON", `{"sc_task": {"inProgress": ["2"]`, `status map: invalid JSON: unexpected end of file`, false},
		{"data after the object", `{} {}`, `status map: invalid JSON: data after the top-level object`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse([]byte(tt.file))
			if err == nil {
				t.Fatalf("Parse succeeded: %#v", m)
			}
			if m != nil {
				t.Errorf("Parse returned a map with an error: %#v", m)
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("error is not one line: %q", msg)
			}
			if tt.part && !strings.HasPrefix(msg, tt.want) || !tt.part && msg != tt.want {
				t.Errorf("error = %q\nwant    %q", msg, tt.want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.json", `{"problem_task": {"inProgress": ["152"], "completed": ["157"]}}`)
	bad := write("bad.json", `{"sc_task": {"inProgress": ["3"], "completed": ["3"]}}`)
	missing := filepath.Join(dir, "missing.json")

	t.Run("empty path is the default", func(t *testing.T) {
		m, err := Load("")
		if err != nil || !reflect.DeepEqual(m, Default()) {
			t.Fatalf("Load(\"\") = %v, %v", m, err)
		}
	})
	t.Run("good file", func(t *testing.T) {
		m, err := Load(good)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := m.First("problem_task", GroupInProgress); got != "152" {
			t.Errorf("problem_task inProgress first = %q", got)
		}
		if !reflect.DeepEqual(m["sc_task"], Default()["sc_task"]) {
			t.Errorf("sc_task not the built-in entry: %#v", m["sc_task"])
		}
	})
	for _, tt := range []struct{ name, path, want string }{
		{"missing file", missing, "status map file " + missing + ": no such file or directory"},
		{"bad file", bad, "status map file " + bad + `: sc_task: value "3" is in both inProgress and completed`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(tt.path)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("Load = %v\nwant %s", err, tt.want)
			}
		})
	}
}

func TestGroupOf(t *testing.T) {
	m := Default()
	tests := []struct {
		table, state string
		want         Group
		ok           bool
	}{
		{"sc_task", "1", GroupTodo, true},
		{"sc_task", "-5", GroupTodo, true},
		{"sc_task", "2", GroupInProgress, true},
		{"sc_task", "7", GroupCompleted, true},
		{"incident_task", "4", GroupCompleted, true},
		{"problem_task", "154", GroupInProgress, true},
		{"problem_task", "157", GroupCompleted, true},
		{"sc_task", "99", "", false},       // unmapped state
		{"sc_task", "", "", false},         // empty state
		{"problem_task", "2", "", false},   // another table's value
		{"change_task", "1", "", false},    // unknown table
		{"SC_TASK", "1", "", false},        // table names are exact
		{"incident_task", " 2", "", false}, // values are exact
		{"incident_task", "-5", GroupTodo, true},
	}
	for _, tt := range tests {
		g, ok := m.GroupOf(tt.table, tt.state)
		if g != tt.want || ok != tt.ok {
			t.Errorf("GroupOf(%q, %q) = %q, %v; want %q, %v", tt.table, tt.state, g, ok, tt.want, tt.ok)
		}
	}
}

func TestFirst(t *testing.T) {
	m, err := Parse([]byte(`{"incident_task": {"inProgress": ["2"], "completed": ["7", "3"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		table string
		g     Group
		want  string
		ok    bool
	}{
		{"sc_task", GroupTodo, "1", true},
		{"sc_task", GroupInProgress, "2", true},
		{"sc_task", GroupCompleted, "3", true},
		{"problem_task", GroupInProgress, "152", true},
		{"incident_task", GroupCompleted, "7", true}, // the file's own order
		{"incident_task", GroupTodo, "", false},      // empty group
		{"change_task", GroupTodo, "", false},        // unknown table
		{"sc_task", Group("done"), "", false},        // unknown group
	}
	for _, tt := range tests {
		v, ok := m.First(tt.table, tt.g)
		if v != tt.want || ok != tt.ok {
			t.Errorf("First(%q, %q) = %q, %v; want %q, %v", tt.table, tt.g, v, ok, tt.want, tt.ok)
		}
	}
}

func TestTables(t *testing.T) {
	want := []string{"incident_task", "problem_task", "sc_task"}
	if got := Default().Tables(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Tables() = %v, want %v", got, want)
	}
	if got := (Map{}).Tables(); len(got) != 0 {
		t.Fatalf("empty map Tables() = %v", got)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		m    Map
		want string
	}{
		{"default", Default(), ""},
		{"empty map", Map{}, ""},
		{"unknown table", Map{"change_task": {InProgress: []string{"2"}, Completed: []string{"3"}}},
			`status map: unknown table "change_task" (want sc_task, incident_task, problem_task)`},
		{"value in two groups", Map{"sc_task": {Todo: []string{"2"}, InProgress: []string{"2"}, Completed: []string{"3"}}},
			`status map: sc_task: value "2" is in both todo and inProgress`},
		{"no completed", Map{"sc_task": {InProgress: []string{"2"}}},
			`status map: sc_task: completed needs at least one value`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.m.Validate()
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Fatalf("Validate() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestTableJSONKeys(t *testing.T) {
	b, err := json.Marshal(Table{Todo: []string{"1"}, InProgress: []string{"2"}, Completed: []string{"3"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"todo":["1"],"inProgress":["2"],"completed":["3"]}`; string(b) != want {
		t.Fatalf("JSON = %s, want %s", b, want)
	}
}
