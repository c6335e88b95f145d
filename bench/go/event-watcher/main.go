// Command event-watcher is the event fan-out benchmark's watcher as a Go control plane would be
// one: a process with one WatchEvents stream that decodes every message whole with the generated
// Go code. bench/event-fanout.ts starts it with Node's IPC channel (BENCH_WATCHERS=go) and talks to
// it as to its Node watchers (bench/parts/event-watcher.ts): newline-delimited JSON on the file
// descriptor in NODE_CHANNEL_FD. It says {"type":"ready"} once the snapshot has arrived, answers
// {"type":"report"} with what it recorded since the last report (the time from each event's
// timestamp, set as the agent commits it, to its arrival here), and ends on {"type":"exit"}.
//
// Usage: event-watcher SOCKET [MAX_EVENTS_PER_MESSAGE [MAX_BATCH_DELAY_MS]]
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	agentv1 "github.com/berth-dev/berth/gen/go/berth/agent/v1"
	"github.com/berth-dev/berth/gen/go/berthclient"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// report is what the Node watchers send (WatcherReport in bench/parts/event-watcher.ts).
type report struct {
	Type        string    `json:"type"`
	LatenciesMs []float64 `json:"latenciesMs"`
	Events      int       `json:"events"`
	Messages    int       `json:"messages"`
	Gaps        int       `json:"gaps"`
	CPUMs       float64   `json:"cpuMs"`
	Error       string    `json:"error,omitempty"`
}

// recorder holds what the stream delivered since the last report.
type recorder struct {
	mu           sync.Mutex
	latenciesMs  []float64
	events       int
	messages     int
	gaps         int
	lastSequence int64
	failure      string
	cpuAtReport  float64
}

// message records the events of one message.
func (r *recorder) message(events []*agentv1.Event, arrived time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.messages++
	for _, e := range events {
		if int64(e.GetSequence()) != r.lastSequence+1 {
			r.gaps++
		}
		r.lastSequence = int64(e.GetSequence())
		r.events++
		r.latenciesMs = append(r.latenciesMs, float64(arrived.Sub(e.GetTime().AsTime()).Microseconds())/1000)
	}
}

func (r *recorder) take() report {
	r.mu.Lock()
	defer r.mu.Unlock()
	cpu := cpuMs()
	out := report{Type: "report", LatenciesMs: r.latenciesMs, Events: r.events, Messages: r.messages, Gaps: r.gaps, CPUMs: cpu - r.cpuAtReport, Error: r.failure}
	if out.LatenciesMs == nil {
		out.LatenciesMs = []float64{}
	}
	r.latenciesMs, r.events, r.messages, r.gaps, r.cpuAtReport = nil, 0, 0, 0, cpu
	return out
}

// cpuMs is this process's CPU time (user and system) so far.
func cpuMs() float64 {
	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &usage); err != nil {
		return 0
	}
	return float64(usage.Utime.Nano()+usage.Stime.Nano()) / 1e6
}

// countArg is the whole number ≥ 0 in argument i, 0 when it is not given; the process ends with
// a message naming the argument when it is not a count.
func countArg(i int, name string) int {
	if len(os.Args) <= i {
		return 0
	}
	n, err := strconv.Atoi(os.Args[i])
	if err != nil || n < 0 {
		fmt.Fprintln(os.Stderr, name+": not a count:", os.Args[i])
		os.Exit(2)
	}
	return n
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: event-watcher SOCKET [MAX_EVENTS_PER_MESSAGE [MAX_BATCH_DELAY_MS]]")
		os.Exit(2)
	}
	perMessage := countArg(2, "MAX_EVENTS_PER_MESSAGE")
	batchDelayMs := countArg(3, "MAX_BATCH_DELAY_MS")
	fd, err := strconv.Atoi(os.Getenv("NODE_CHANNEL_FD"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "started without Node's IPC channel (NODE_CHANNEL_FD)")
		os.Exit(2)
	}
	channel := os.NewFile(uintptr(fd), "ipc")
	var sendMu sync.Mutex
	send := func(message any) {
		line, _ := json.Marshal(message)
		sendMu.Lock()
		defer sendMu.Unlock()
		_, _ = channel.Write(append(line, '\n'))
	}

	client, err := berthclient.Dial(berthclient.Options{Address: os.Args[1]})
	if err != nil {
		send(map[string]string{"type": "failed", "error": err.Error()})
		os.Exit(1)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := client.Tasks.WatchEvents(ctx, &agentv1.WatchEventsRequest{IncludeSnapshot: true, MaxEventsPerMessage: uint32(perMessage), MaxBatchDelayMs: uint32(batchDelayMs)})
	if err != nil {
		send(map[string]string{"type": "failed", "error": err.Error()})
		os.Exit(1)
	}
	r := &recorder{lastSequence: -1, cpuAtReport: cpuMs()}
	go func() {
		for {
			message, err := stream.Recv()
			arrived := time.Now()
			if err != nil {
				if status.Code(err) != codes.Canceled {
					r.mu.Lock()
					r.failure = err.Error()
					r.mu.Unlock()
				}
				return
			}
			switch kind := message.GetKind().(type) {
			case *agentv1.WatchEventsResponse_Snapshot:
				r.mu.Lock()
				r.lastSequence = int64(kind.Snapshot.GetSequence())
				r.mu.Unlock()
				if !kind.Snapshot.GetMore() {
					send(map[string]string{"type": "ready"})
				}
			case *agentv1.WatchEventsResponse_Event:
				r.message([]*agentv1.Event{kind.Event}, arrived)
			case *agentv1.WatchEventsResponse_Events:
				r.message(kind.Events.GetEvents(), arrived)
			}
		}
	}()

	lines := bufio.NewScanner(channel)
	for lines.Scan() {
		var message struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(lines.Bytes(), &message) != nil {
			continue
		}
		switch message.Type {
		case "report":
			send(r.take())
		case "exit":
			cancel()
			_ = client.Close()
			return
		}
	}
	// The channel closed: the benchmark is gone.
	cancel()
	_ = client.Close()
}
