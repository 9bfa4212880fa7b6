// Package statusmap maps ServiceNow task states onto the three groups the
// sync understands (To do, In progress, Completed), per ServiceNow table.
//
// The file format and the built-in default are fixed by
// shared/design/interfaces.md; the rules by shared/design/mission.md. Every
// error is one line naming the table, group and value at fault.
package statusmap

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
)

// Group is one of the three state groups.
type Group string

// The groups, in the map's own order.
const (
	GroupTodo       Group = "todo"
	GroupInProgress Group = "inProgress"
	GroupCompleted  Group = "completed"
)

// groups is the fixed order in which groups are checked and reported.
var groups = [...]Group{GroupTodo, GroupInProgress, GroupCompleted}

// knownTables are the ServiceNow tables a map may name.
var knownTables = [...]string{"sc_task", "incident_task", "problem_task"}

// Table is the map of one ServiceNow table: each group an ordered list of
// that table's state values. The first value of a group is where Hyperproof
// moves ServiceNow.
type Table struct {
	Todo       []string `json:"todo"`
	InProgress []string `json:"inProgress"`
	Completed  []string `json:"completed"`
}

// values returns the list of group g, or nil for an unknown group.
func (t Table) values(g Group) []string {
	switch g {
	case GroupTodo:
		return t.Todo
	case GroupInProgress:
		return t.InProgress
	case GroupCompleted:
		return t.Completed
	}
	return nil
}

// set replaces the list of group g (g must be one of the three groups).
func (t *Table) set(g Group, v []string) {
	switch g {
	case GroupTodo:
		t.Todo = v
	case GroupInProgress:
		t.InProgress = v
	case GroupCompleted:
		t.Completed = v
	}
}

// Map is the status map, keyed by ServiceNow table name (sc_task,
// incident_task, problem_task).
type Map map[string]Table

// Default returns the built-in map for the three tables' out-of-box states
// (interfaces.md). Each call returns a fresh copy.
func Default() Map {
	return Map{
		"sc_task":       {Todo: []string{"1", "-5"}, InProgress: []string{"2"}, Completed: []string{"3", "4", "7"}},
		"incident_task": {Todo: []string{"1", "-5"}, InProgress: []string{"2"}, Completed: []string{"3", "4", "7"}},
		"problem_task":  {Todo: []string{"151"}, InProgress: []string{"152", "154"}, Completed: []string{"157"}},
	}
}

// Parse reads a status map file. It is strict: the top level may name only
// the three known tables, a table only the three groups, each group is a list
// of non-empty strings, a value belongs to one group only, and every table
// needs at least one inProgress and one completed value. The result is
// Default() with each table the file names replaced by the file's entry.
func Parse(data []byte) (Map, error) {
	m, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("status map: %w", err)
	}
	return m, nil
}

// Load reads and parses the status map file at path; "" means Default().
// Errors name the file and the problem.
func Load(path string) (Map, error) {
	if path == "" {
		return Default(), nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is named below; keep the cause
		}
		return nil, fmt.Errorf("status map file %s: %w", path, err)
	}
	m, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("status map file %s: %w", path, err)
	}
	return m, nil
}

// Validate checks the rules of the map: known tables only, non-empty values
// without surrounding spaces, each value in one group only (and once), and at
// least one inProgress and one completed value per table.
func (m Map) Validate() error {
	if err := m.validate(); err != nil {
		return fmt.Errorf("status map: %w", err)
	}
	return nil
}

func (m Map) validate() error {
	for _, name := range m.Tables() {
		if !slices.Contains(knownTables[:], name) {
			return fmt.Errorf("unknown table %q (want %s)", name, strings.Join(knownTables[:], ", "))
		}
		t := m[name]
		seen := make(map[string]Group)
		for _, g := range groups {
			for _, v := range t.values(g) {
				if v == "" {
					return fmt.Errorf("%s: %s: empty value", name, g)
				}
				if strings.TrimSpace(v) != v {
					return fmt.Errorf("%s: %s: value %q has leading or trailing spaces", name, g, v)
				}
				if prev, dup := seen[v]; dup {
					if prev == g {
						return fmt.Errorf("%s: value %q appears twice in %s", name, v, g)
					}
					return fmt.Errorf("%s: value %q is in both %s and %s", name, v, prev, g)
				}
				seen[v] = g
			}
		}
		for _, g := range []Group{GroupInProgress, GroupCompleted} {
			if len(t.values(g)) == 0 {
				return fmt.Errorf("%s: %s needs at least one value", name, g)
			}
		}
	}
	return nil
}

// GroupOf returns the group of a table's state value. ok is false when the
// value is in no group (unmapped) or the table is not in the map.
func (m Map) GroupOf(table, state string) (g Group, ok bool) {
	t, ok := m[table]
	if !ok {
		return "", false
	}
	for _, g := range groups {
		if slices.Contains(t.values(g), state) {
			return g, true
		}
	}
	return "", false
}

// First returns the first state value of group g of a table: where
// Hyperproof moves ServiceNow. ok is false for an unknown table or group, or
// an empty group.
func (m Map) First(table string, g Group) (string, bool) {
	v := m[table].values(g)
	if len(v) == 0 {
		return "", false
	}
	return v[0], true
}

// Tables returns the table names of the map, sorted.
func (m Map) Tables() []string {
	names := make([]string, 0, len(m))
	for name := range m {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// parse walks the JSON token by token so that unknown keys, duplicate keys,
// non-string values and trailing data are all reported precisely. Errors have
// no prefix; Parse and Load add theirs.
func parse(data []byte) (Map, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	p := parser{dec: dec}

	if err := p.open('{', "the file must be a JSON object"); err != nil {
		return nil, err
	}
	m := Default()
	named := make(map[string]bool)
	for dec.More() {
		name, err := p.key()
		if err != nil {
			return nil, err
		}
		if !slices.Contains(knownTables[:], name) {
			return nil, fmt.Errorf("unknown table %q (want %s)", name, strings.Join(knownTables[:], ", "))
		}
		if named[name] {
			return nil, fmt.Errorf("table %s is named twice", name)
		}
		named[name] = true
		t, err := p.table(name)
		if err != nil {
			return nil, err
		}
		m[name] = t
	}
	if err := p.close('}'); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		if err != nil {
			return nil, p.syntax(err)
		}
		return nil, errors.New("invalid JSON: data after the top-level object")
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	return m, nil
}

type parser struct{ dec *json.Decoder }

func (p parser) token() (json.Token, error) {
	tok, err := p.dec.Token()
	if err != nil {
		return nil, p.syntax(err)
	}
	return tok, nil
}

// syntax turns a decoder error into a one-line message with the byte offset.
func (p parser) syntax(err error) error {
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("invalid JSON: unexpected end of file")
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("invalid JSON at byte %d: %s", se.Offset, se.Error())
	}
	return fmt.Errorf("invalid JSON: %s", err.Error())
}

// open reads an opening delimiter; what is the message when something else is
// found.
func (p parser) open(d json.Delim, what string) error {
	tok, err := p.token()
	if err != nil {
		return err
	}
	if tok != d {
		return fmt.Errorf("%s, not %s", what, describe(tok))
	}
	return nil
}

// close reads a closing delimiter. The decoder only hands out tokens of valid
// JSON, so after More() is false the closing delimiter is all that can come.
func (p parser) close(d json.Delim) error {
	tok, err := p.token()
	if err != nil {
		return err
	}
	if tok != d {
		return fmt.Errorf("invalid JSON: expected %q, found %s", d.String(), describe(tok))
	}
	return nil
}

func (p parser) key() (string, error) {
	tok, err := p.token()
	if err != nil {
		return "", err
	}
	k, ok := tok.(string)
	if !ok { // cannot happen inside an object with valid JSON
		return "", fmt.Errorf("invalid JSON: expected a key, found %s", describe(tok))
	}
	return k, nil
}

func (p parser) table(name string) (Table, error) {
	var t Table
	if err := p.open('{', name+": must be an object with todo, inProgress and completed"); err != nil {
		return t, err
	}
	named := make(map[Group]bool)
	for p.dec.More() {
		k, err := p.key()
		if err != nil {
			return t, err
		}
		g := Group(k)
		if !slices.Contains(groups[:], g) {
			return t, fmt.Errorf("%s: unknown key %q (want todo, inProgress, completed)", name, k)
		}
		if named[g] {
			return t, fmt.Errorf("%s: %s is named twice", name, g)
		}
		named[g] = true
		v, err := p.group(name, g)
		if err != nil {
			return t, err
		}
		t.set(g, v)
	}
	return t, p.close('}')
}

func (p parser) group(name string, g Group) ([]string, error) {
	if err := p.open('[', fmt.Sprintf("%s: %s must be a list of state values (strings)", name, g)); err != nil {
		return nil, err
	}
	var values []string
	for p.dec.More() {
		tok, err := p.token()
		if err != nil {
			return nil, err
		}
		v, ok := tok.(string)
		if !ok {
			if n, isNum := tok.(json.Number); isNum {
				return nil, fmt.Errorf("%s: %s: value %s must be a string (write %q)", name, g, n, n.String())
			}
			return nil, fmt.Errorf("%s: %s: values must be strings, not %s", name, g, describe(tok))
		}
		values = append(values, v)
	}
	return values, p.close(']')
}

// describe names a JSON token for an error message.
func describe(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		switch v {
		case '{':
			return "an object"
		case '[':
			return "a list"
		}
		return fmt.Sprintf("%q", v.String())
	case string:
		return fmt.Sprintf("the string %q", v)
	case json.Number:
		return "the number " + v.String()
	case bool:
		return fmt.Sprintf("%t", v)
	case nil:
		return "null"
	}
	return fmt.Sprintf("%v", tok)
}
