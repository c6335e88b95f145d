package berthclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"sync/atomic"
	"time"

	agentv1 "github.com/berth-dev/berth/gen/go/berth/agent/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Snapshot is every task (of the watch's TaskIDs, when set) as of Sequence; the events that
// follow start after it. Resync is set on one taken because the agent no longer had the events the
// watch needed (it was away longer than the agent keeps them, or the agent's state was reset):
// Reason says which, and the events in between are not delivered — the snapshot replaces them.
type Snapshot struct {
	Sequence uint64
	Tasks    []*agentv1.Task
	Resync   bool
	Reason   string
}

// WatchItem is one thing a watch delivers: an Event or a Snapshot (the other is nil).
type WatchItem struct {
	Event    *agentv1.Event
	Snapshot *Snapshot
}

// WatchOptions for Watch.
type WatchOptions struct {
	// FromSequence is the first sequence to deliver: the last one a previous watch delivered plus
	// one, to carry on where it stopped. 0: from the moment the watch first reaches the agent.
	FromSequence uint64
	// TaskIDs limits the watch to these tasks' events (and snapshot entries).
	TaskIDs []string
	// Snapshot begins the watch with a snapshot of the tasks (FromSequence must be 0).
	Snapshot bool
	// InitialBackoff is the first wait before opening the stream again after a failure; it
	// doubles up to MaxBackoff, with jitter (100 ms and 5 s when zero).
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	// IdleTimeout: a stream that brings nothing, not even a heartbeat, for this long is taken for
	// dead and opened again (60 s when zero, never when negative). The agent sends a heartbeat
	// every 10 s by default.
	IdleTimeout time.Duration
	// MaxEventsPerMessage asked of the agent (100 when zero, at most 1000).
	MaxEventsPerMessage uint32
	// MaxBatchDelay asks the agent to hold each message this long once its first event is ready,
	// so that the events ready meanwhile travel in it (max_batch_delay_ms, in whole milliseconds):
	// fewer messages, each event up to this much later. Zero: a message goes as soon as its events
	// are on the agent's disk. At most 1 s.
	MaxBatchDelay time.Duration
	// OnReconnect, when set, is told each time the stream is opened again, with the error that
	// ended the last one (nil when the agent ended it, shutting down).
	OnReconnect func(attempt int, err error)
}

// Watch is a running watch. Its items come on C, which is closed when the watch ends: when its
// context is done (Err is nil then), or on an error another attempt cannot mend (Err says which:
// an invalid request, a permission).
type Watch struct {
	C    <-chan WatchItem
	done chan struct{}
	err  error
}

// Err waits until the watch has ended and says why: nil when its context ended it.
func (w *Watch) Err() error {
	<-w.done
	return w.err
}

// Watch follows the agent's events across dropped connections and agent restarts, delivering
// each event exactly once and in sequence order: it keeps the last sequence it delivered (or that
// a heartbeat showed the agent had passed) and opens the stream again from the one after it,
// skipping anything at or below it. OUT_OF_RANGE (the events it needs are gone) gives a resync
// Snapshot; RESOURCE_EXHAUSTED for a watcher too slow resumes from the sequence the agent named,
// which is the one after the last it sent. Read C until it is closed, or cancel ctx.
func (c *Client) Watch(ctx context.Context, opts WatchOptions) *Watch {
	items := make(chan WatchItem)
	w := &Watch{C: items, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		defer close(items)
		if opts.Snapshot && opts.FromSequence != 0 {
			w.err = errors.New("berthclient: FromSequence must be 0 when a snapshot is asked for")
			return
		}
		if opts.MaxBatchDelay < 0 || opts.MaxBatchDelay > maxBatchDelay {
			w.err = fmt.Errorf("berthclient: MaxBatchDelay must be from 0 to %v (got %v)", maxBatchDelay, opts.MaxBatchDelay)
			return
		}
		state := &watchState{client: c, opts: opts, items: items, wantSnapshot: opts.Snapshot}
		if opts.FromSequence > 0 {
			state.position, state.known = opts.FromSequence-1, true
		}
		w.err = state.run(ctx)
	}()
	return w
}

// maxBatchDelay is the longest delay the agent takes (max_batch_delay_ms up to 1000).
const maxBatchDelay = time.Second

// finalCodes are the codes another attempt cannot mend.
var finalCodes = map[codes.Code]bool{
	codes.InvalidArgument: true, codes.PermissionDenied: true, codes.Unauthenticated: true, codes.Unimplemented: true, codes.FailedPrecondition: true,
}

var errIdle = errors.New("berthclient: the event stream was silent past the idle timeout")

type watchState struct {
	client *Client
	opts   WatchOptions
	items  chan<- WatchItem
	// position is the last sequence delivered or passed; known says whether there is one yet.
	position     uint64
	known        bool
	wantSnapshot bool
	resync       bool
	resyncReason string
	// failures since the last message: the back-off grows with them.
	failures int
}

func (s *watchState) run(ctx context.Context) error {
	initial, maximum := s.opts.InitialBackoff, s.opts.MaxBackoff
	if initial <= 0 {
		initial = 100 * time.Millisecond
	}
	if maximum < initial {
		maximum = 5 * time.Second
		if maximum < initial {
			maximum = initial
		}
	}
	var lastErr error
	for attempt := 0; ; attempt++ {
		if ctx.Err() != nil {
			return nil
		}
		if attempt > 0 {
			if s.opts.OnReconnect != nil {
				s.opts.OnReconnect(attempt, lastErr)
			}
			if s.failures > 0 {
				delay := initial << uint(minInt(s.failures-1, 30))
				if delay > maximum || delay <= 0 {
					delay = maximum
				}
				delay = delay/2 + time.Duration(rand.Int63n(int64(delay/2)+1))
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(delay):
				}
			}
		}
		err := s.stream(ctx)
		if ctx.Err() != nil {
			return nil
		}
		lastErr = err
		switch {
		case err == nil || errors.Is(err, errIdle):
			s.failures++
		case status.Code(err) == codes.OutOfRange:
			// The events needed are gone (SEQUENCE_EXPIRED), or the agent has not got that far
			// (SEQUENCE_BEYOND_LATEST: its state was reset, or it is another agent): start again
			// from a snapshot.
			s.wantSnapshot, s.resync, s.resyncReason = true, true, status.Convert(err).Message()
			s.failures = 0
		case status.Code(err) == codes.ResourceExhausted && reasonOf(err) == "WATCHER_TOO_SLOW":
			// The agent names the sequence after the last message it sent; every message sent was
			// read and delivered before this error, so that is position + 1.
			s.failures = 0
		case finalCodes[status.Code(err)]:
			return err
		default:
			s.failures++
		}
	}
}

func reasonOf(err error) string {
	reason, _ := ErrorReason(err)
	return reason
}

func minInt(a, b int) int {
	if a < b {
		return a
	}
	return b
}

// stream opens one WatchEvents stream and delivers what it brings until it ends: nil when the
// agent ended it, the error otherwise.
func (s *watchState) stream(ctx context.Context) error {
	streamCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if !s.wantSnapshot && !s.known {
		// "From now": the agent's latest sequence, asked before the stream opens, so that a
		// reconnect before the first event still knows where to carry on.
		info, err := s.client.Tasks.GetAgentInfo(streamCtx, &agentv1.GetAgentInfoRequest{})
		if err != nil {
			return err
		}
		s.position, s.known = info.GetLatestSequence(), true
	}
	perMessage := s.opts.MaxEventsPerMessage
	if perMessage == 0 {
		perMessage = 100
	}
	if perMessage > 1000 {
		perMessage = 1000
	}
	// Whole milliseconds, rounded up: a delay asked for is never dropped to none.
	delayMs := uint32((s.opts.MaxBatchDelay + time.Millisecond - 1) / time.Millisecond)
	request := &agentv1.WatchEventsRequest{TaskIds: s.opts.TaskIDs, MaxEventsPerMessage: perMessage, MaxBatchDelayMs: delayMs}
	if s.wantSnapshot {
		request.IncludeSnapshot = true
	} else {
		request.FromSequence = s.position + 1
	}
	stream, err := s.client.Tasks.WatchEvents(streamCtx, request)
	if err != nil {
		return err
	}
	idleTimeout := s.opts.IdleTimeout
	if idleTimeout == 0 {
		idleTimeout = 60 * time.Second
	}
	var idled int32
	var idle *time.Timer
	if idleTimeout > 0 {
		idle = time.AfterFunc(idleTimeout, func() {
			atomic.StoreInt32(&idled, 1)
			cancel()
		})
		defer idle.Stop()
	}
	// deliver hands an item to the caller; the time the caller takes is not the stream's silence.
	deliver := func(item WatchItem) error {
		if idle != nil {
			idle.Stop()
		}
		select {
		case s.items <- item:
		case <-ctx.Done():
			return ctx.Err()
		}
		return nil
	}
	var parts []*agentv1.Task
	for {
		message, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if atomic.LoadInt32(&idled) == 1 {
				return errIdle
			}
			return err
		}
		s.failures = 0
		switch kind := message.GetKind().(type) {
		case *agentv1.WatchEventsResponse_Snapshot:
			parts = append(parts, kind.Snapshot.GetTasks()...)
			if kind.Snapshot.GetMore() {
				break
			}
			s.position, s.known, s.wantSnapshot = kind.Snapshot.GetSequence(), true, false
			item := &Snapshot{Sequence: kind.Snapshot.GetSequence(), Tasks: parts, Resync: s.resync, Reason: s.resyncReason}
			parts, s.resync, s.resyncReason = nil, false, ""
			if err := deliver(WatchItem{Snapshot: item}); err != nil {
				return err
			}
		case *agentv1.WatchEventsResponse_Event:
			if err := s.deliverEvents([]*agentv1.Event{kind.Event}, deliver); err != nil {
				return err
			}
		case *agentv1.WatchEventsResponse_Events:
			if err := s.deliverEvents(kind.Events.GetEvents(), deliver); err != nil {
				return err
			}
		case *agentv1.WatchEventsResponse_Heartbeat:
			if s.known && kind.Heartbeat.GetSequence() > s.position {
				s.position = kind.Heartbeat.GetSequence()
			}
		}
		if idle != nil {
			idle.Reset(idleTimeout)
		}
	}
}

func (s *watchState) deliverEvents(events []*agentv1.Event, deliver func(WatchItem) error) error {
	for _, event := range events {
		if s.known && event.GetSequence() <= s.position {
			continue
		}
		s.position, s.known = event.GetSequence(), true
		if err := deliver(WatchItem{Event: event}); err != nil {
			return err
		}
	}
	return nil
}
