// Package telemetry is the worker's metrics and logging: OpenTelemetry
// metrics exported to Prometheus (the Temporal SDK's own and the sync's),
// and a log/slog handler that redacts secrets and tags task ids.
//
// The sync's instruments are package functions (ItemSynced, SyncLatency,
// Error, PollerLag) so activities can call them without a handle; they do
// nothing until NewMetrics has run, so code and tests that never start
// metrics need no set-up. Call them from activities (or other ordinary Go
// code), never from workflow code: a workflow replays, and would count again.
package telemetry

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	"go.temporal.io/sdk/client"
	temporalotel "go.temporal.io/sdk/contrib/opentelemetry"
)

// Label values of the sync's metrics. Keep label values to small fixed sets
// like these: every distinct value is a time series.
const (
	KindComment    = "comment"    // a comment carried to the other side
	KindAttachment = "attachment" // a ServiceNow attachment carried as Hyperproof proof
	KindProof      = "proof"      // a task proof published to its control on close
	KindStatus     = "status"     // a status carried to the other side

	DirectionToHyperproof = "to_hyperproof"
	DirectionToServiceNow = "to_servicenow"

	SideHyperproof = "hyperproof"
	SideServiceNow = "servicenow"
)

// Metric names as Prometheus shows them (OpenTelemetry names with dots;
// the exporter adds _total to counters and the unit to the others).
const (
	MetricItemsSynced = "hpsync.items.synced" // hpsync_items_synced_total{kind,direction}
	MetricSyncLatency = "hpsync.sync.latency" // hpsync_sync_latency_seconds{kind} (histogram)
	MetricErrors      = "hpsync.errors"       // hpsync_errors_total{kind}
	MetricPollerLag   = "hpsync.poller.lag"   // hpsync_poller_lag_seconds{side}
)

// secondsBuckets are the histogram buckets of every duration in seconds:
// the SDK's request and task latencies (milliseconds to seconds) and the
// sync's event-to-sync latency (seconds to the 10-minute comment check and
// beyond).
var secondsBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600}

// Metrics is a running metrics pipeline: a meter provider whose reader is a
// Prometheus exporter on its own registry.
type Metrics struct {
	provider *sdkmetric.MeterProvider
	handler  http.Handler
	temporal client.MetricsHandler
	inst     *instruments
}

type instruments struct {
	synced  metric.Int64Counter
	latency metric.Float64Histogram
	errors  metric.Int64Counter

	mu  sync.Mutex
	lag map[string]lagReading
	reg metric.Registration
}

type lagReading struct {
	lag time.Duration
	at  time.Time
}

// active is the pipeline the package functions record into (nil: none).
var active atomic.Pointer[instruments]

// NewMetrics builds the pipeline and makes it the one the package functions
// record into. onError receives errors of the SDK's metrics (nil ignores
// them). Serve Handler on METRICS_ADDR; Shutdown when done.
func NewMetrics(service string, onError func(error)) (*Metrics, error) {
	if onError == nil {
		onError = func(error) {}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	exporter, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	provider := sdkmetric.NewMeterProvider(
		sdkmetric.WithReader(exporter),
		sdkmetric.WithResource(resource.NewSchemaless(attribute.String("service.name", service))),
		sdkmetric.WithView(sdkmetric.NewView(
			sdkmetric.Instrument{Kind: sdkmetric.InstrumentKindHistogram, Unit: "s"},
			sdkmetric.Stream{Aggregation: sdkmetric.AggregationExplicitBucketHistogram{Boundaries: secondsBuckets}},
		)),
	)
	inst, err := newInstruments(provider.Meter("hpsync"))
	if err != nil {
		_ = provider.Shutdown(context.Background())
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	m := &Metrics{
		provider: provider,
		handler:  mux,
		temporal: temporalotel.NewMetricsHandler(temporalotel.MetricsHandlerOptions{
			Meter:                provider.Meter("temporal-sdk-go"),
			OnError:              onError,
			UseMonotonicCounters: true,
		}),
		inst: inst,
	}
	active.Store(inst)
	return m, nil
}

func newInstruments(meter metric.Meter) (*instruments, error) {
	inst := &instruments{lag: map[string]lagReading{}}
	var err error
	if inst.synced, err = meter.Int64Counter(MetricItemsSynced,
		metric.WithDescription("Items carried from one side to the other, by kind and direction.")); err != nil {
		return nil, err
	}
	if inst.latency, err = meter.Float64Histogram(MetricSyncLatency, metric.WithUnit("s"),
		metric.WithDescription("Time from an item's creation at its source to its arrival on the other side, by kind.")); err != nil {
		return nil, err
	}
	if inst.errors, err = meter.Int64Counter(MetricErrors,
		metric.WithDescription("Errors of the sync, by kind.")); err != nil {
		return nil, err
	}
	lag, err := meter.Float64ObservableGauge(MetricPollerLag, metric.WithUnit("s"),
		metric.WithDescription("How far behind now each poller's view of its side is; it keeps growing while a poller does not report."))
	if err != nil {
		return nil, err
	}
	inst.reg, err = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		inst.mu.Lock()
		defer inst.mu.Unlock()
		now := time.Now()
		for side, r := range inst.lag {
			o.ObserveFloat64(lag, (r.lag + now.Sub(r.at)).Seconds(), metric.WithAttributes(attribute.String("side", side)))
		}
		return nil
	}, lag)
	if err != nil {
		return nil, err
	}
	return inst, nil
}

// Handler serves the Prometheus exposition at GET /metrics.
func (m *Metrics) Handler() http.Handler { return m.handler }

// TemporalMetricsHandler is the Temporal client option MetricsHandler that
// sends the SDK's metrics (temporal_request_total, temporal_workflow_*,
// temporal_activity_*, ...) through this pipeline.
func (m *Metrics) TemporalMetricsHandler() client.MetricsHandler { return m.temporal }

// Shutdown stops the pipeline; the package functions stop recording into it.
func (m *Metrics) Shutdown(ctx context.Context) error {
	active.CompareAndSwap(m.inst, nil)
	_ = m.inst.reg.Unregister()
	return m.provider.Shutdown(ctx)
}

func orBackground(ctx context.Context) context.Context {
	if ctx == nil {
		return context.Background()
	}
	return ctx
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// ItemSynced counts one item (KindComment, KindAttachment, ...) carried in
// direction (DirectionToHyperproof or DirectionToServiceNow). Count an item
// once, when it is written, not when a retry finds it already there.
func ItemSynced(ctx context.Context, kind, direction string) {
	if in := active.Load(); in != nil {
		in.synced.Add(orBackground(ctx), 1, metric.WithAttributes(
			attribute.String("kind", orUnknown(kind)), attribute.String("direction", orUnknown(direction))))
	}
}

// SyncLatency records the time from an item's creation (or change) at its
// source to its arrival on the other side.
func SyncLatency(ctx context.Context, kind string, d time.Duration) {
	if d < 0 {
		d = 0
	}
	if in := active.Load(); in != nil {
		in.latency.Record(orBackground(ctx), d.Seconds(), metric.WithAttributes(attribute.String("kind", orUnknown(kind))))
	}
}

// Error counts one error of the given kind (e.g. "servicenow_http_4xx",
// "hyperproof_http_5xx", "network"): a small fixed set, never a message.
func Error(ctx context.Context, kind string) {
	if in := active.Load(); in != nil {
		in.errors.Add(orBackground(ctx), 1, metric.WithAttributes(attribute.String("kind", orUnknown(kind))))
	}
}

// PollerLag reports that the poller of side (SideHyperproof or
// SideServiceNow) has now seen every change up to d ago: pass time.Since
// the instant its last successful cycle read up to. The exported gauge
// keeps growing from there until the next report, so a stopped poller shows
// as a rising lag. With several workers, each reports while it runs the
// poller: alert on the smallest (min by (side)).
func PollerLag(side string, d time.Duration) {
	if d < 0 {
		d = 0
	}
	if in := active.Load(); in != nil {
		in.mu.Lock()
		in.lag[orUnknown(side)] = lagReading{lag: d, at: time.Now()}
		in.mu.Unlock()
	}
}
