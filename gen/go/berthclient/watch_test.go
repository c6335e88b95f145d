package berthclient

import (
	"context"
	"strings"
	"testing"
	"time"

	agentv1 "github.com/berth-dev/berth/gen/go/berth/agent/v1"
)

// Watch asks the agent for the batch delay it was given, in whole milliseconds rounded up, and
// delivers the events.
func TestWatchAsksForTheBatchDelay(t *testing.T) {
	requests := make(chan *agentv1.WatchEventsRequest, 1)
	client, err := Dial(Options{Address: serve(t, t.TempDir(), eventServer{count: 3, requests: requests})})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	watch := client.Watch(ctx, WatchOptions{MaxBatchDelay: 24500 * time.Microsecond})
	for want := uint64(1); want <= 3; want++ {
		item, ok := <-watch.C
		if !ok {
			t.Fatalf("the watch ended before event %d: %v", want, watch.Err())
		}
		if got := item.Event.GetSequence(); got != want {
			t.Fatalf("event %d came as %d", want, got)
		}
	}
	request := <-requests
	if request.GetMaxBatchDelayMs() != 25 || request.GetMaxEventsPerMessage() != 100 {
		t.Errorf("asked for max_batch_delay_ms %d and max_events_per_message %d, want 25 and 100", request.GetMaxBatchDelayMs(), request.GetMaxEventsPerMessage())
	}
}

// A batch delay the agent would refuse ends the watch at once, naming the option.
func TestWatchRefusesABatchDelayOverOneSecond(t *testing.T) {
	client, err := Dial(Options{Address: serve(t, t.TempDir(), eventServer{})})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	for _, delay := range []time.Duration{-time.Millisecond, 1001 * time.Millisecond} {
		watch := client.Watch(context.Background(), WatchOptions{MaxBatchDelay: delay})
		if err := watch.Err(); err == nil || !strings.Contains(err.Error(), "MaxBatchDelay") {
			t.Errorf("MaxBatchDelay %v: the watch ended with %v, want an error naming MaxBatchDelay", delay, err)
		}
		if _, open := <-watch.C; open {
			t.Errorf("MaxBatchDelay %v: an item came", delay)
		}
	}
}
