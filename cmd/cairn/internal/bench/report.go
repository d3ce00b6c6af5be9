package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"
)

// FormatVersion is the version of the JSON report; it changes only when a
// key changes meaning or unit, or is removed.
const FormatVersion = 1

// Units of the figures.
const (
	unitMBps       = "MB/s" // 10⁶ bytes per second
	unitMsgps      = "msg/s"
	unitBytes      = "bytes"
	unitRatio      = "ratio"
	unitMs         = "ms"
	unitRequests   = "requests"
	unitRoundTrips = "round trips"
	unitMiB        = "MiB"
	unitPUTs       = "PUTs"
	unitMessages   = "messages"
	unitFiles      = "files"
	unitCPU        = "µs/msg" // CPU time per message
	unitCPUPerMB   = "ms/MB"  // CPU time per 10⁶ bytes
)

// Metric is one figure with its unit.
type Metric struct {
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
}

// TargetResult is one target checked against the figures of a run.
type TargetResult struct {
	Name  string  `json:"name"` // e.g. "append_ratio_1kib_1p >= 0.9"
	Key   string  `json:"key"`  // the figure checked
	Value float64 `json:"value"`
	Op    string  `json:"op"` // ">=" or "<="
	Limit float64 `json:"limit"`
	Unit  string  `json:"unit"`
	Met   bool    `json:"met"`
	// Run is false when the figure's phase did not run (Config.Only).
	Run bool `json:"run"`
}

// Report is everything one Run measured. Its JSON form is bench.json;
// README.md ("Benchmarks") documents every key.
type Report struct {
	Format   int               `json:"format"`
	Store    string            `json:"store"`
	Duration string            `json:"duration"` // Config.Duration: each side of each comparison
	Go       string            `json:"go"`
	CPUs     int               `json:"cpus"`
	Started  time.Time         `json:"started"`
	Elapsed  string            `json:"elapsed"`
	Metrics  map[string]Metric `json:"metrics"`
	Targets  []TargetResult    `json:"targets"`
}

// set records a figure; the key must be one of Figures.
func (r *Report) set(key string, v float64) {
	f, ok := figureByKey[key]
	if !ok {
		panic("bench: undocumented figure " + key)
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		v = 0
	}
	r.Metrics[key] = Metric{Value: v, Unit: f.Unit}
}

// Figure documents one key of the report.
type Figure struct {
	Key   string
	Unit  string
	Phase string
	What  string
}

// Figures lists every key a full run reports, in table order. README.md
// lists the same keys with the same units; a test keeps them in step.
func Figures() []Figure { return append([]Figure(nil), figures...) }

var figures = buildFigures()

var figureByKey = func() map[string]Figure {
	m := make(map[string]Figure, len(figures))
	for _, f := range figures {
		m[f.Key] = f
	}
	return m
}()

// appendCases are the throughput comparisons: message size × pchannels.
var appendCases = []struct {
	size, pchannels int
}{{1 << 10, 1}, {1 << 10, 8}, {16 << 10, 1}, {16 << 10, 8}}

// caseName is "1kib_1p" and the like.
func caseName(size, pchannels int) string { return fmt.Sprintf("%dkib_%dp", size>>10, pchannels) }

func buildFigures() []Figure {
	var fs []Figure
	add := func(phase, key, unit, what string) { fs = append(fs, Figure{key, unit, phase, what}) }
	for _, c := range appendCases {
		n := caseName(c.size, c.pchannels)
		what := fmt.Sprintf("%d KiB messages, %d pchannel(s) × %d producers", c.size>>10, c.pchannels, producers)
		add("append", "append_"+n+"_mbps", unitMBps, what+": payload appended through the Writer")
		add("append", "append_"+n+"_msgs_per_s", unitMsgps, what+": messages acked")
		add("append", "append_"+n+"_batch_bytes", unitBytes, what+": mean batch object the Writer PUT")
		add("append", "append_"+n+"_inflight", unitPUTs, "mean Writer PUTs in flight (at most W per pchannel)")
		add("append", "append_"+n+"_put_ms", unitMs, "mean duration of the Writer's PUTs")
		add("append", "append_"+n+"_cpu_ms_per_mb", unitCPUPerMB, "CPU time of this process per MB appended (producers, Writer, S3 client)")
		add("append", "raw_put_"+n+"_mbps", unitMBps, "raw PutIfAbsent of objects of that size, W per pchannel in flight")
		add("append", "raw_put_"+n+"_inflight", unitPUTs, "mean raw PUTs in flight")
		add("append", "raw_put_"+n+"_put_ms", unitMs, "mean duration of the raw PUTs")
		add("append", "raw_put_"+n+"_cpu_ms_per_mb", unitCPUPerMB, "CPU time of this process per MB PUT raw (S3 client)")
		add("append", "append_ratio_"+n, unitRatio, "append MB/s ÷ raw PUT MB/s")
	}
	add("append", "append_keyed_1kib_1p_msgs_per_s", unitMsgps, "1 KiB messages with idempotency keys, one pchannel × 64 producers counting up, 10 × the dedup limit (10,000): messages acked")
	add("append", "append_keyed_first_tenth_msgs_per_s", unitMsgps, "the same: the first tenth of the messages")
	add("append", "append_keyed_last_tenth_msgs_per_s", unitMsgps, "the same: the last tenth, the window full and evicting")
	add("append", "append_keyed_tenths_ratio", unitRatio, "last tenth ÷ first tenth")
	add("append", "append_keyed_ratio", unitRatio, "keyed msg/s ÷ append_1kib_1p_msgs_per_s (unkeyed, same run)")
	add("latency", "append_p50_ms", unitMs, "one sequential producer, 1 KiB, linger 0: Append p50")
	add("latency", "append_p99_ms", unitMs, "the same: Append p99")
	add("latency", "raw_put_p50_ms", unitMs, "raw PutIfAbsent of the same one-message object: p50")
	add("latency", "raw_put_p99_ms", unitMs, "raw PutIfAbsent: p99")
	add("latency", "append_p50_overhead_ms", unitMs, "append p50 − raw PUT p50")
	add("latency", "append_p99_overhead_ms", unitMs, "append p99 − raw PUT p99")

	add("tail", "tail_inproc_p50_ms", unitMs, "ack → delivery, scanner sharing the writer's cache and tail: p50")
	add("tail", "tail_inproc_p99_ms", unitMs, "the same: p99")
	add("tail", "tail_longpoll_p50_ms", unitMs, "ack → delivery, scanner long-polling the store (no cache, no tail): p50")
	add("tail", "tail_longpoll_p99_ms", unitMs, "the same: p99")
	add("tail", "tail_poll_interval_ms", unitMs, "the long-poll scanner's longest pause between probes (PollMax)")
	add("tail", "raw_get_p50_ms", unitMs, "raw GET of the slots just appended, alongside: p50")
	add("tail", "raw_get_p99_ms", unitMs, "raw GET: p99")

	add("catchup", "catchup_wal_mbps", unitMBps, "scanner from the start of a WAL (read-ahead 16), WAL bytes per second")
	add("catchup", "catchup_segments_mbps", unitMBps, "the same messages from Arrow segments after a flush, WAL bytes per second")
	add("catchup", "catchup_raw_get_mbps", unitMBps, "raw GETs of the WAL's objects, 16 in parallel")
	add("catchup", "catchup_segments_ratio", unitRatio, "segments MB/s ÷ WAL MB/s")
	add("catchup", "catchup_wal_bytes", unitBytes, "WAL read in each pass")
	add("catchup", "catchup_segment_bytes", unitBytes, "Arrow segment files the flush wrote for it")
	add("catchup", "catchup_segment_files", unitFiles, "segment files the flush wrote (one per vchannel per round)")
	add("catchup", "segment_bytes_per_wal_mb", unitBytes, "segment bytes per MB of WAL flushed")
	add("catchup", "segment_overhead_bytes", unitBytes, "fixed size of a segment file (one empty message: schema, footer, dictionaries, buffer headers), paid once per file")
	add("catchup", "flush_mbps", unitMBps, "snapshot.Flusher turning that WAL into segments, WAL bytes per second")

	add("takeover", "takeover_ms", unitMs, "lease takeable → new holder's first acked append (median of runs)")
	add("takeover", "takeover_round_trips", unitRoundTrips, "sequential store round trips in that time (requests overlapping in time count once)")
	add("takeover", "takeover_requests", unitRequests, "store requests in that time, all kinds")
	add("takeover", "takeover_lease_get", unitRequests, "lease record GETs")
	add("takeover", "takeover_lease_put", unitRequests, "lease record CAS PUTs")
	add("takeover", "takeover_checkpoint_get", unitRequests, "checkpoint record GETs")
	add("takeover", "takeover_slot_get", unitRequests, "WAL slot GETs (recovery replay from the checkpoint)")
	add("takeover", "takeover_window_put", unitRequests, "fence-window PUTs (fence + W−1 fillers)")
	add("takeover", "takeover_append_put", unitRequests, "data PUTs of the first append")
	add("takeover", "takeover_other", unitRequests, "any other request")
	add("takeover", "takeover_backlog_ms", unitMs, "a live lease taken over at once (a restart after kill -9) with 512 unflushed slots → first acked append")
	add("takeover", "takeover_backlog_slot_get", unitRequests, "WAL slot GETs of that takeover's replay")

	add("window", "window_messages", unitMessages, "keyed 1 KiB messages appended to one vchannel as `cairn produce` sends a file (8 producers counting up, 900 a request, one request of each in flight): 200,000 per second of duration, at most 1,000,000")
	add("window", "window_dedup_state_bytes", unitBytes, "the dedup state object the flush wrote: the idempotency window, every key of the run (about 1,100 runs of up to 900 keys, within the 100,000-run limit)")
	add("window", "window_checkpoint_bytes", unitBytes, "the checkpoint record after that flush")
	add("window", "window_consume_wal_mbps", unitMBps, "scanner of that vchannel from the start, before the flush (from the WAL), WAL bytes per second")
	add("window", "window_consume_segments_mbps", unitMBps, "the same after the flush (from segments), WAL bytes per second")
	add("window", "window_consume_ratio", unitRatio, "after the flush ÷ before the flush")
	add("window", "window_flush_mbps", unitMBps, "snapshot.Flusher flushing those lines, window folded, WAL bytes per second")
	add("window", "window_takeover_ms", unitMs, "lease takeable → new holder's first acked append, the full window to rebuild")
	add("window", "window_takeover_base_ms", unitMs, "the same for a pchannel with the takeover phase's 256 messages")
	add("window", "window_takeover_ratio", unitRatio, "full-window takeover ÷ small-window takeover")

	add("http", "http_append_mbps", unitMBps, "1 KiB appends through the HTTP API (Go SDK, 64 concurrent clients, 1 pchannel)")
	add("http", "http_append_msgs_per_s", unitMsgps, "the same: messages acked")
	add("http", "http_lib_append_mbps", unitMBps, "the same appends through the library Writer, interleaved")
	add("http", "http_append_ratio", unitRatio, "HTTP MB/s ÷ library MB/s")
	add("http", "http_cpu_us_per_msg", unitCPU, "CPU time of this process (client, server, writer) per message over HTTP")
	add("http", "http_lib_cpu_us_per_msg", unitCPU, "CPU time of this process per message through the library")

	for _, size := range producerSizes {
		n := fmt.Sprintf("%dkib", size>>10)
		what := fmt.Sprintf("%d KiB keyed messages, 1 pchannel, %d in flight", size>>10, min(producerInflightMsgs, producerInflightBytes/size))
		add("producer", "http_producer_"+n+"_msgs_per_s", unitMsgps, what+": SDK Producer (Window 8, binary batches) through the HTTP API, messages acked")
		add("producer", "http_producer_lib_"+n+"_msgs_per_s", unitMsgps, what+": library Writer.AppendBatch calls (8 in flight), interleaved")
		add("producer", "http_producer_"+n+"_ratio", unitRatio, "Producer over HTTP msg/s ÷ library msg/s")
		add("producer", "http_producer_"+n+"_cpu_us_per_msg", unitCPU, "CPU time of this process (SDK client, server, writer) per message through the Producer")
		add("producer", "http_producer_lib_"+n+"_cpu_us_per_msg", unitCPU, "CPU time of this process per message through the library")
	}
	for _, w := range producerWindows {
		add("producer", fmt.Sprintf("producer_window%d_msgs_per_s", w), unitMsgps, fmt.Sprintf("Producer as `cairn produce` builds it, --window %d, 1 KiB messages: messages acked", w))
	}
	add("producer", "producer_window4_ratio", unitRatio, "--window 4 msg/s ÷ --window 1 msg/s")

	for _, c := range lambdaCases {
		k := "lambda_" + c.key()
		who := map[string]string{"serve": "cairn serve", "shared": "node function, shared write mode", "exclusive": "node function, exclusive write mode", "affinity": "node function, takeover write mode, reserved concurrency 1"}[c.mode]
		what := fmt.Sprintf("%s, %d SDK producer(s) on %d pchannel(s)", who, c.producers, c.pchannels)
		add("lambda", k+"_msgs_per_s", unitMsgps, what+": 1 KiB messages acked")
		add("lambda", k+"_p50_ms", unitMs, what+": append request p50")
		add("lambda", k+"_p99_ms", unitMs, what+": append request p99")
		add("lambda", k+"_store_requests_per_append", unitRequests, what+": store requests per append request")
		add("lambda", k+"_throttled", unitRequests, what+": 429 and 503 answers the SDK saw")
		add("lambda", k+"_failed", unitMessages, what+": messages failed after the SDK's retries")
	}
	for _, np := range []int{1, 4} {
		add("lambda", fmt.Sprintf("lambda_k16_%dp_ratio", np), unitRatio, fmt.Sprintf("16 producers on %d pchannel(s): node function msg/s ÷ cairn serve msg/s", np))
		add("lambda", fmt.Sprintf("lambda_k16_%dp_p99_ratio", np), unitRatio, fmt.Sprintf("16 producers on %d pchannel(s): node function append p99 ÷ cairn serve append p99", np))
	}

	add("process", "peak_rss_mib", unitMiB, "peak resident memory of the bench process (VmHWM)")
	return fs
}

// target is one goal a run is checked against.
type target struct {
	key    string
	atMost bool // value ≤ limit; else value ≥ limit
	limit  func(m map[string]Metric) (float64, bool)
	text   string // how the limit is written, e.g. "2 × raw_get_p99_ms + tail_poll_interval_ms"
}

func fixed(v float64) func(map[string]Metric) (float64, bool) {
	return func(map[string]Metric) (float64, bool) { return v, true }
}

var targets = []target{
	{key: "append_ratio_1kib_1p", limit: fixed(0.90)},
	{key: "append_ratio_1kib_8p", limit: fixed(0.90)},
	{key: "append_ratio_16kib_1p", limit: fixed(0.90)},
	{key: "append_ratio_16kib_8p", limit: fixed(0.90)},
	{key: "append_keyed_tenths_ratio", limit: fixed(0.90)},
	{key: "append_keyed_ratio", limit: fixed(0.90)},
	{key: "append_p50_overhead_ms", atMost: true, limit: fixed(2)},
	{key: "tail_inproc_p99_ms", atMost: true, limit: fixed(5)},
	{key: "tail_longpoll_p99_ms", atMost: true, text: "2 × raw_get_p99_ms + tail_poll_interval_ms",
		limit: func(m map[string]Metric) (float64, bool) {
			g, ok1 := m["raw_get_p99_ms"]
			p, ok2 := m["tail_poll_interval_ms"]
			return 2*g.Value + p.Value, ok1 && ok2
		}},
	{key: "catchup_segments_ratio", limit: fixed(2)},
	{key: "takeover_round_trips", atMost: true, limit: fixed(5)},
	{key: "takeover_backlog_ms", atMost: true, limit: fixed(1000)},
	{key: "window_consume_ratio", limit: fixed(0.9)},
	{key: "window_checkpoint_bytes", atMost: true, limit: fixed(64 << 10)},
	{key: "window_takeover_ratio", atMost: true, limit: fixed(2)},
	{key: "http_append_ratio", limit: fixed(0.85)},
	{key: "http_producer_lib_1kib_msgs_per_s", limit: fixed(150_000)},
	{key: "http_producer_lib_1kib_cpu_us_per_msg", atMost: true, limit: fixed(8)},
	{key: "http_producer_1kib_ratio", limit: fixed(0.5)},
	{key: "http_producer_16kib_ratio", limit: fixed(0.8)},
	{key: "lambda_k16_1p_ratio", limit: fixed(0.5)},
	{key: "lambda_k16_1p_p99_ratio", atMost: true, limit: fixed(3)},
	{key: "lambda_shared_k16_1p_failed", atMost: true, limit: fixed(0)},
	{key: "lambda_shared_k16_4p_failed", atMost: true, limit: fixed(0)},
}

// check evaluates every target against r.Metrics.
func (r *Report) check() {
	r.Targets = r.Targets[:0]
	for _, t := range targets {
		res := TargetResult{Key: t.key, Op: ">=", Unit: figureByKey[t.key].Unit}
		if t.atMost {
			res.Op = "<="
		}
		m, ok := r.Metrics[t.key]
		limit, lok := t.limit(r.Metrics)
		res.Value, res.Limit, res.Run = m.Value, limit, ok && lok
		switch {
		case !res.Run:
		case t.atMost:
			res.Met = m.Value <= limit
		default:
			res.Met = m.Value >= limit
		}
		text := t.text
		if text == "" {
			text = trimFloat(limit)
		}
		res.Name = fmt.Sprintf("%s %s %s", t.key, res.Op, text)
		r.Targets = append(r.Targets, res)
	}
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(r)
}

// WriteTable writes every figure, then every target with met or missed.
func (r *Report) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "cairn bench: store %s, %s per side of each comparison, %s, %d CPUs, took %s\n", r.Store, r.Duration, r.Go, r.CPUs, r.Elapsed)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	phase := ""
	for _, f := range figures {
		m, ok := r.Metrics[f.Key]
		if !ok {
			continue
		}
		if f.Phase != phase {
			phase = f.Phase
			fmt.Fprintf(tw, "\t\t\t\n%s\t\t\t\n", strings.ToUpper(phase))
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", f.Key, formatValue(m.Value), m.Unit, f.What)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tVALUE\tLIMIT\t")
	for _, t := range r.Targets {
		switch {
		case !t.Run:
			fmt.Fprintf(tw, "  %s\t-\t%s\tnot run\n", t.Name, t.Op)
		case t.Met:
			fmt.Fprintf(tw, "  %s\t%s %s\t%s %s\tmet\n", t.Name, formatValue(t.Value), t.Unit, t.Op, formatValue(t.Limit))
		default:
			fmt.Fprintf(tw, "  %s\t%s %s\t%s %s\tMISSED\n", t.Name, formatValue(t.Value), t.Unit, t.Op, formatValue(t.Limit))
		}
	}
	return tw.Flush()
}

func formatValue(v float64) string {
	switch a := math.Abs(v); {
	case v == math.Trunc(v) && a < 1e15:
		return fmt.Sprintf("%.0f", v)
	case a >= 1000:
		return fmt.Sprintf("%.0f", v)
	case a >= 100:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

func trimFloat(v float64) string {
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.3f", v), "0"), ".")
}
