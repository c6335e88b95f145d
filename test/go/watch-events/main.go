// Command watch-events follows an agent's events with berthclient.Watch and prints each item on a
// line of its own ("event SEQUENCE TASK KIND", "snapshot SEQUENCE resync|first"), and each
// reconnect on stderr, until it has seen the task named by -until stop. The tests kill and restart
// the agent while it runs.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	agentv1 "github.com/berth-dev/berth/gen/go/berth/agent/v1"
	"github.com/berth-dev/berth/gen/go/berthclient"
)

func main() {
	addr := flag.String("addr", berthclient.DefaultAddress, "the agent")
	from := flag.Uint64("from", 0, "the first sequence to deliver")
	until := flag.String("until", "", "end once this task has stopped")
	timeout := flag.Duration("timeout", 5*time.Minute, "give up after this long")
	caFile := flag.String("cacert", "", "TLS: the CA that signed the agent's certificate (a TCP address)")
	certFile := flag.String("cert", "", "TLS: a client certificate, for an agent that asks for one")
	keyFile := flag.String("key", "", "TLS: the client certificate's key")
	serverName := flag.String("server-name", "", "TLS: the name in the agent's certificate, when not the address's host")
	flag.Parse()
	options := berthclient.Options{Address: *addr}
	if *caFile != "" || *certFile != "" {
		options.TLS = &berthclient.TLS{CAFile: *caFile, CertFile: *certFile, KeyFile: *keyFile, ServerName: *serverName}
	}
	client, err := berthclient.Dial(options)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	watch := client.Watch(ctx, berthclient.WatchOptions{
		FromSequence:   *from,
		InitialBackoff: 50 * time.Millisecond,
		MaxBackoff:     500 * time.Millisecond,
		OnReconnect: func(attempt int, err error) {
			fmt.Fprintf(os.Stderr, "reconnect %d: %v\n", attempt, err)
		},
	})
	for item := range watch.C {
		if s := item.Snapshot; s != nil {
			kind := "first"
			if s.Resync {
				kind = "resync"
			}
			fmt.Printf("snapshot %d %s\n", s.Sequence, kind)
			continue
		}
		e := item.Event
		fmt.Printf("event %d %s %s\n", e.GetSequence(), e.GetTaskId(), kindOf(e))
		if e.GetTaskId() == *until && e.GetTask().GetKnownStatus() == agentv1.TaskStatus_TASK_STATUS_STOPPED {
			cancel()
		}
	}
	if err := watch.Err(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if ctx.Err() == context.DeadlineExceeded {
		fmt.Fprintln(os.Stderr, "timed out")
		os.Exit(1)
	}
}

func kindOf(e *agentv1.Event) string {
	switch e.GetChange().(type) {
	case *agentv1.Event_Task:
		return "task"
	case *agentv1.Event_Container:
		return "container"
	case *agentv1.Event_Removed:
		return "removed"
	case *agentv1.Event_Pull:
		return "pull"
	case *agentv1.Event_OrphanRemoved:
		return "orphanRemoved"
	case *agentv1.Event_Network:
		return "network"
	}
	return "none"
}
