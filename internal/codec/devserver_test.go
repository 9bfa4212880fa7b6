package codec_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"hpsync/internal/codec"
	"hpsync/internal/config"
	"hpsync/internal/devserver"
	"hpsync/internal/workerapp"
	"hpsync/workflows"
)

func echoWorkflow(ctx workflow.Context, in string) (string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 10 * time.Second})
	var out string
	err := workflow.ExecuteActivity(ctx, "codec-test-seen", in).Get(ctx, &out)
	return out, err
}

func refuseWorkflow(_ workflow.Context, in string) (string, error) {
	return "", temporal.NewNonRetryableApplicationError("refused: "+in, "Refused", nil)
}

func seenActivity(_ context.Context, in string) (string, error) { return "seen: " + in, nil }

// TestHistoryStoredEncrypted starts workflows whose input is a comment with a
// name and an e-mail address through a client dialled like the worker's
// (workerapp.Dial with PAYLOAD_KEYS), then reads their histories with a
// plain client: the text is nowhere in clear, every payload is encrypted,
// and the codec server gives it back.
func TestHistoryStoredEncrypted(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the Temporal dev server")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var logBuf bytes.Buffer
	srv, err := devserver.Start(ctx, devserver.Options{UIPort: -1, Log: &logBuf})
	if err != nil {
		t.Fatalf("dev server: %v\n%s", err, logBuf.String())
	}
	t.Cleanup(srv.Stop)

	cfg := config.Config{TemporalAddress: srv.Address, TemporalNamespace: "default", PayloadKeys: codec.NewKeySpec("k1")}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	c, err := workerapp.Dial(ctx, cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const queue = "codec-test"
	w := worker.New(c, queue, worker.Options{})
	w.RegisterWorkflowWithOptions(echoWorkflow, workflow.RegisterOptions{Name: "codec-test-echo"})
	w.RegisterWorkflowWithOptions(refuseWorkflow, workflow.RegisterOptions{Name: "codec-test-refuse"})
	w.RegisterActivityWithOptions(seenActivity, activity.RegisterOptions{Name: "codec-test-seen"})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	nonce := make([]byte, 6)
	rand.Read(nonce)
	secret := "Jane Doe <jane.doe@example.com> wrote: the vault code is " + hex.EncodeToString(nonce)

	echo, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: "codec-test-echo", TaskQueue: queue, Memo: map[string]any{"note": secret},
	}, "codec-test-echo", secret)
	if err != nil {
		t.Fatal(err)
	}
	var got string
	if err := echo.Get(ctx, &got); err != nil || got != "seen: "+secret {
		t.Fatalf("echo through the codec: %q, %v", got, err)
	}
	refuse, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "codec-test-refuse", TaskQueue: queue}, "codec-test-refuse", secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := refuse.Get(ctx, nil); err == nil || !strings.Contains(err.Error(), "refused: "+secret) {
		t.Fatalf("failure message through the codec: %v", err)
	}

	plain, err := client.Dial(client.Options{HostPort: srv.Address, Logger: tlog.NewStructuredLogger(quiet)})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	codecSrv := httptest.NewServer(codec.NewHTTPHandler(codec.New(cfg.Keyring()), nil))
	defer codecSrv.Close()

	for _, id := range []string{"codec-test-echo", "codec-test-refuse"} {
		hist := &historypb.History{}
		it := plain.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				t.Fatal(err)
			}
			hist.Events = append(hist.Events, ev)
		}
		raw, err := proto.Marshal(hist)
		if err != nil {
			t.Fatal(err)
		}
		text, _ := protojson.Marshal(hist)
		for _, clear := range []string{secret, "jane.doe@example.com", "Jane Doe", "vault code"} {
			if bytes.Contains(raw, []byte(clear)) || bytes.Contains(text, []byte(clear)) {
				t.Errorf("%s: history holds %q in clear", id, clear)
			}
		}
		var ps []*commonpb.Payload
		collectPayloads(hist.ProtoReflect(), &ps)
		if len(ps) < 2 {
			t.Fatalf("%s: only %d payloads in the history", id, len(ps))
		}
		for i, p := range ps {
			if enc := string(p.Metadata[codec.MetadataEncoding]); enc != codec.EncodingEncrypted || string(p.Metadata[codec.MetadataKeyID]) != "k1" {
				t.Errorf("%s: payload %d is %q (key %q), not encrypted with k1", id, i, enc, p.Metadata[codec.MetadataKeyID])
			}
		}

		// What the Temporal UI does with TEMPORAL_CODEC_ENDPOINT set.
		body, _ := protojson.Marshal(&commonpb.Payloads{Payloads: ps})
		req, _ := http.NewRequest(http.MethodPost, codecSrv.URL+"/decode", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Namespace", "default")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: codec server %d: %s", id, resp.StatusCode, out)
		}
		var decoded commonpb.Payloads
		if err := protojson.Unmarshal(out, &decoded); err != nil {
			t.Fatal(err)
		}
		var all []byte
		for _, p := range decoded.Payloads {
			all = append(all, p.Data...)
		}
		quoted, _ := json.Marshal(secret) // the payloads are JSON: <, > are escaped
		if !bytes.Contains(all, bytes.Trim(quoted, `"`)) {
			t.Errorf("%s: the codec server did not give the text back: %s", id, all)
		}
	}

	// A client without the keys cannot read the result.
	var s string
	if err := plain.GetWorkflow(ctx, "codec-test-echo", "").Get(ctx, &s); err == nil {
		t.Errorf("a client without PAYLOAD_KEYS read the encrypted result: %q", s)
	}
}

// collectPayloads finds every Payload in a message (search attributes, which
// the server must read, are never encoded and are skipped).
func collectPayloads(m protoreflect.Message, out *[]*commonpb.Payload) {
	if p, ok := m.Interface().(*commonpb.Payload); ok {
		*out = append(*out, p)
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Name() == "search_attributes" {
			return true
		}
		switch {
		case fd.IsMap():
			if fd.MapValue().Message() != nil {
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					collectPayloads(mv.Message(), out)
					return true
				})
			}
		case fd.IsList():
			if fd.Message() != nil {
				for i := 0; i < v.List().Len(); i++ {
					collectPayloads(v.List().Get(i).Message(), out)
				}
			}
		case fd.Message() != nil:
			collectPayloads(v.Message(), out)
		}
		return true
	})
}

// TestRecordedPlainHistoriesReplayWithCodec replays the histories recorded
// without encryption (workflows/testdata/histories) with the worker's data
// and failure converters and PAYLOAD_KEYS set: turning encryption on does
// not break workflows that are already running.
func TestRecordedPlainHistoriesReplayWithCodec(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "workflows", "testdata", "histories", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no recorded histories: %v", err)
	}
	var opts client.Options
	codec.New(config.Config{PayloadKeys: codec.NewKeySpec("k1")}.Keyring()).ApplyTo(&opts)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r, err := os.Open(f)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			hist, err := client.HistoryFromJSON(r, client.HistoryJSONOptions{})
			if err != nil {
				t.Fatal(err)
			}
			replayer, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{
				DataConverter: opts.DataConverter, FailureConverter: opts.FailureConverter,
			})
			if err != nil {
				t.Fatal(err)
			}
			replayer.RegisterWorkflowWithOptions(workflows.TaskSync, workflow.RegisterOptions{Name: workflows.TaskSyncWorkflowName})
			if err := replayer.ReplayWorkflowHistory(nil, hist); err != nil {
				t.Errorf("replay with the codec: %v", err)
			}
		})
	}
}
