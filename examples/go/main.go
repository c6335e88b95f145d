// Command example is a small control plane for one berth agent: it asks the agent who it is, runs
// a task of two containers, follows its events until it runs, runs a command in one of its
// containers, stops it and waits until it has stopped.
//
//	go run . -addr unix:///run/berth/berth.sock -image busybox:stable
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	agentv1 "github.com/berth-dev/berth/gen/go/berth/agent/v1"
	"github.com/berth-dev/berth/gen/go/berthclient"
)

func main() {
	addr := flag.String("addr", berthclient.DefaultAddress, "the agent: a unix socket or host:port")
	image := flag.String("image", "busybox:stable", "an image with a shell (sh, sleep)")
	user := flag.String("registry-user", "", "user name for the image's registry, when it asks for one")
	id := flag.String("id", fmt.Sprintf("example-%d", time.Now().Unix()), "the task's id (RunTask is idempotent on it)")
	caFile := flag.String("cacert", "", "TLS: the CA that signed the agent's certificate (a TCP address)")
	certFile := flag.String("cert", "", "TLS: a client certificate, for an agent that asks for one")
	keyFile := flag.String("key", "", "TLS: the client certificate's key")
	serverName := flag.String("server-name", "", "TLS: the name in the agent's certificate, when not the address's host")
	flag.Parse()
	options := berthclient.Options{Address: *addr}
	if *caFile != "" || *certFile != "" {
		options.TLS = &berthclient.TLS{CAFile: *caFile, CertFile: *certFile, KeyFile: *keyFile, ServerName: *serverName}
	}
	if err := run(options, *image, *user, os.Getenv("REGISTRY_PASSWORD"), *id); err != nil {
		fmt.Fprintln(os.Stderr, "example:", err)
		if d := berthclient.ErrorDetails(err); d.BadRequest != nil {
			for _, v := range d.BadRequest.GetFieldViolations() {
				fmt.Fprintf(os.Stderr, "  %s: %s\n", v.GetField(), v.GetDescription())
			}
		}
		os.Exit(1)
	}
}

// serve is a shell loop that ends at once on SIGTERM.
var serve = []string{"sh", "-c", `trap "exit 0" TERM; while true; do sleep 1 & wait $!; done`}

func run(options berthclient.Options, image, user, password, id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	client, err := berthclient.Dial(options)
	if err != nil {
		return err
	}
	defer client.Close()

	info, err := client.Tasks.GetAgentInfo(ctx, &agentv1.GetAgentInfoRequest{})
	if err != nil {
		return fmt.Errorf("GetAgentInfo: %w", err)
	}
	fmt.Printf("agent %s (berth %s) on %s %s\n", info.GetAgentId(), info.GetVersion(), info.GetRuntime().GetName(), info.GetRuntime().GetVersion())

	// Every event of the task from now on, printed as it comes; the watch carries on across
	// reconnects, each event once.
	watchCtx, stopWatching := context.WithCancel(ctx)
	defer stopWatching()
	watch := client.Watch(watchCtx, berthclient.WatchOptions{FromSequence: info.GetLatestSequence() + 1, TaskIDs: []string{id}})
	printed := make(chan struct{})
	go func() {
		defer close(printed)
		for item := range watch.C {
			if e := item.Event; e != nil {
				fmt.Printf("event %d %s\n", e.GetSequence(), describe(e))
			}
		}
	}()

	var credentials *agentv1.RegistryCredentials
	if user != "" {
		credentials = &agentv1.RegistryCredentials{Username: user, Password: password}
	}
	definition := &agentv1.TaskDefinition{
		Id:          id,
		Family:      "example",
		NetworkMode: agentv1.NetworkMode_NETWORK_MODE_NONE,
		Containers: []*agentv1.ContainerDefinition{
			{Name: "web", Image: image, Command: serve, RegistryCredentials: credentials},
			{
				Name: "sidecar", Image: image, Command: serve, RegistryCredentials: credentials,
				DependsOn: []*agentv1.ContainerDependency{{ContainerName: "web", Condition: agentv1.DependencyCondition_DEPENDENCY_CONDITION_START}},
			},
		},
	}
	running, err := client.RunAndWait(ctx, definition)
	if err != nil {
		return fmt.Errorf("run %s: %w", id, err)
	}
	fmt.Printf("task %s is %s with %d containers\n", id, running.GetKnownStatus(), len(running.GetContainers()))

	exec, err := client.Tasks.Exec(ctx, &agentv1.ExecRequest{TaskId: id, ContainerName: "web", Command: []string{"sh", "-c", "echo hello from web; exit 7"}})
	if err != nil {
		return fmt.Errorf("Exec: %w", err)
	}
	fmt.Printf("exec exit code %d: %s\n", exec.GetExitCode(), strings.TrimSpace(string(exec.GetOutput())))

	if _, err := client.Tasks.StopTask(ctx, &agentv1.StopTaskRequest{TaskId: id, Reason: "the example is done"}); err != nil {
		return fmt.Errorf("StopTask: %w", err)
	}
	stopped, err := client.WaitForTask(ctx, id, agentv1.TaskStatus_TASK_STATUS_STOPPED)
	if err != nil {
		return fmt.Errorf("wait for %s to stop: %w", id, err)
	}
	fmt.Printf("task %s is %s: %s\n", id, stopped.GetKnownStatus(), stopped.GetReason())
	stopWatching()
	<-printed
	return watch.Err()
}

func describe(e *agentv1.Event) string {
	switch {
	case e.GetTask() != nil:
		return fmt.Sprintf("task %s (desired %s) %s", e.GetTask().GetKnownStatus(), e.GetTask().GetDesiredStatus(), e.GetTask().GetReason())
	case e.GetContainer() != nil:
		c := e.GetContainer().GetContainer()
		return fmt.Sprintf("container %s %s %s", c.GetName(), c.GetKnownStatus(), c.GetReason())
	case e.GetPull() != nil:
		return fmt.Sprintf("pull %s %d/%d bytes", e.GetPull().GetContainerName(), e.GetPull().GetBytesDone(), e.GetPull().GetBytesTotal())
	case e.GetNetwork() != nil:
		return "network changed"
	case e.GetRemoved() != nil:
		return "task removed"
	}
	return "other"
}
