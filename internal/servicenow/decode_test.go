package servicenow

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"
)

func mustRecord(t *testing.T, s string) rawRecord {
	t.Helper()
	var r rawRecord
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestReferenceShapes(t *testing.T) {
	const id = "681ccaf9c0a8016400b98a06818d57c7"
	cases := []struct {
		name, json, want string
	}{
		{"empty string", `""`, ""},
		{"null", `null`, ""},
		{"absent", ``, ""},
		{"bare sys_id (exclude_reference_link)", `"` + id + `"`, id},
		{"link+value (default)", `{"link":"https://inst.example.com/api/now/table/sys_user/` + id + `","value":"` + id + `"}`, id},
		{"value+link, other key order", `{"value":"` + id + `","link":"https://inst.example.com/api/now/table/sys_user/` + id + `"}`, id},
		{"display_value+link+value (all)", `{"display_value":"Joe Employee","link":"https://inst.example.com/api/now/table/sys_user/` + id + `","value":"` + id + `"}`, id},
		{"display_value+link, no value (true, v2)", `{"display_value":"Joe Employee","link":"https://inst.example.com/api/now/v2/table/sys_user/` + id + `"}`, id},
		{"display_value+link with query", `{"display_value":"Joe","link":"https://inst.example.com/api/now/table/sys_user/` + id + `?sysparm_view=x"}`, id},
		{"empty under all", `{"display_value":"","value":""}`, ""},
		{"null display_value", `{"display_value":null,"value":""}`, ""},
		{"value not a sys_id", `{"link":"https://inst.example.com/api/now/table/sys_user_group/global","value":"global"}`, "global"},
		{"display only, no link", `{"display_value":"Joe Employee"}`, ""},
	}
	for _, c := range cases {
		doc := `{"assigned_to":` + c.json + `}`
		if c.json == "" {
			doc = `{}`
		}
		r := mustRecord(t, doc)
		if got := r.ref("assigned_to"); got != c.want {
			t.Errorf("%s: ref = %q, want %q", c.name, got, c.want)
		}
	}
}

func TestDecodeTaskTolerantTypes(t *testing.T) {
	// The same task as the Table API (strings), as a typed API (numbers and
	// booleans) and with display_value=all objects: all decode alike.
	docs := map[string]string{
		"strings": `{"sys_id":"abc","number":"SCTASK0010042","state":"2","active":"true","sys_mod_count":"1234",
			"sys_updated_on":"2025-09-20 08:14:03","sys_created_on":"2025-09-19 00:00:00","assigned_to":"u1","comments":""}`,
		"typed": `{"sys_id":"abc","number":"SCTASK0010042","state":2,"active":true,"sys_mod_count":1234.0,
			"sys_updated_on":"2025-09-20 08:14:03","sys_created_on":"2025-09-19 00:00:00","assigned_to":{"value":"u1"}}`,
		"display_all": `{"sys_id":{"display_value":"abc","value":"abc"},"number":{"display_value":"SCTASK0010042","value":"SCTASK0010042"},
			"state":{"display_value":"Work in Progress","value":"2"},"active":{"display_value":"true","value":"true"},
			"sys_mod_count":{"display_value":"1,234","value":"1234"},
			"sys_updated_on":{"display_value":"20.09.2025 10:14:03","value":"2025-09-20 08:14:03"},
			"sys_created_on":{"display_value":"19.09.2025 02:00:00","value":"2025-09-19 00:00:00"},
			"assigned_to":{"display_value":"Alice","link":"https://i/api/now/table/sys_user/u1","value":"u1"}}`,
		"display_counter": `{"sys_id":"abc","number":"SCTASK0010042","state":"2","active":"TRUE","sys_mod_count":"1,234",
			"sys_updated_on":"2025-09-20 08:14:03","sys_created_on":"2025-09-19 00:00:00","assigned_to":{"display_value":"Alice","link":"https://i/api/now/table/sys_user/u1"}}`,
	}
	want := Task{
		Table: "sc_task", SysID: "abc", Number: "SCTASK0010042", State: "2", AssignedTo: "u1", Active: true, ModCount: 1234,
		UpdatedOn: time.Date(2025, 9, 20, 8, 14, 3, 0, time.UTC), CreatedOn: time.Date(2025, 9, 19, 0, 0, 0, 0, time.UTC),
	}
	for name, doc := range docs {
		got, err := decodeTask(mustRecord(t, doc), "sc_task")
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got != want {
			t.Errorf("%s:\n got %+v\nwant %+v", name, got, want)
		}
	}

	if _, err := decodeTask(mustRecord(t, `{"sys_id":"a","sys_updated_on":"20.09.2025 10:14:03"}`), "sc_task"); err == nil {
		t.Error("a display-format date was accepted as a raw date")
	}
	if _, err := decodeTask(mustRecord(t, `{"sys_id":"a","sys_mod_count":"many"}`), "sc_task"); err == nil {
		t.Error("a non-numeric counter was accepted")
	}
	if _, err := decodeTask(mustRecord(t, `{"number":"x"}`), "sc_task"); err == nil {
		t.Error("a record without sys_id was accepted")
	}
}

func TestDecodeAttachmentReleaseVariants(t *testing.T) {
	// Older releases have no hash/state keys; numbers are strings.
	old := `{"sys_id":"a1","file_name":"image","content_type":"image/jpeg","size_bytes":"36597","size_compressed":"25130",
		"compressed":"true","table_name":"incident","table_sys_id":"t1","sys_created_on":"2016-01-22 05:52:17","sys_created_by":"admin"}`
	a, err := decodeAttachment(mustRecord(t, old))
	if err != nil {
		t.Fatal(err)
	}
	if a.SizeBytes != 36597 || a.Hash != "" || a.State != "" || a.TableSysID != "t1" || a.CreatedBy != "admin" {
		t.Errorf("old: %+v", a)
	}
	newer := `{"sys_id":"a2","file_name":"test","size_bytes":"5881","hash":"8671fa","state":"pending","table_sys_id":"t2",
		"download_link":"https://i/api/now/attachment/a2/file","sys_created_on":"2022-11-05 00:53:43"}`
	a, err = decodeAttachment(mustRecord(t, newer))
	if err != nil || a.Hash != "8671fa" || a.State != "pending" || a.DownloadLink == "" {
		t.Errorf("newer: %+v %v", a, err)
	}
}

func TestParseLinks(t *testing.T) {
	h := http.Header{}
	h.Add("Link", `<https://i.example.com/api/now/table/incident?sysparm_limit=1&sysparm_offset=0>;rel="first",<https://i.example.com/api/now/table/incident?sysparm_limit=1&sysparm_offset=-1>;rel="prev",<https://i.example.com/api/now/table/incident?sysparm_fields=a,b&sysparm_offset=1>;rel="next",<https://i.example.com/api/now/table/incident?sysparm_limit=1&sysparm_offset=72>;rel="last"`)
	links := parseLinks(h.Values("Link"))
	if len(links) != 4 {
		t.Fatalf("%d links: %+v", len(links), links)
	}
	if links[2].rel != "next" || links[2].url != "https://i.example.com/api/now/table/incident?sysparm_fields=a,b&sysparm_offset=1" {
		t.Errorf("next = %+v", links[2])
	}
	if links[1].rel != "prev" || links[3].rel != "last" {
		t.Errorf("rels: %+v", links)
	}
	l := parseLinks([]string{`</x?a=1>; rel="prev next"; title="t"`})
	if len(l) != 1 || !hasRel(l[0].rel, "next") {
		t.Errorf("multi-rel: %+v", l)
	}
}

func TestAttachmentIDFromLocation(t *testing.T) {
	for loc, want := range map[string]string{
		"https://i.example.com/api/now/attachment/41f9dad09783111084d57e121153af94/file": "41f9dad09783111084d57e121153af94",
		"/api/now/v1/attachment/41f9/file":                                               "41f9",
		"https://i.example.com/api/now/attachment/41f9":                                  "41f9",
		"": "",
		"https://i.example.com/api/now/attachment/": "",
	} {
		if got := attachmentIDFromLocation(loc); got != want {
			t.Errorf("%q -> %q, want %q", loc, got, want)
		}
	}
}
