package berthclient

import (
	"context"
	"fmt"
	"strings"

	agentv1 "github.com/berth-dev/berth/gen/go/berth/agent/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TaskStoppedError: the task stopped before it got to the status waited for. Task is the task as
// GetTask gave it then; its reason and its containers' say why.
type TaskStoppedError struct {
	Task    *agentv1.Task
	Awaited agentv1.TaskStatus
}

func (e *TaskStoppedError) Error() string {
	reasons := []string{e.Task.GetReason()}
	if reasons[0] == "" {
		reasons[0] = "no reason given"
	}
	for _, c := range e.Task.GetContainers() {
		if c.GetReason() != "" {
			reasons = append(reasons, c.GetName()+": "+c.GetReason())
		}
	}
	return fmt.Sprintf("task %s stopped before it was %s: %s", e.Task.GetDefinition().GetId(), e.Awaited, strings.Join(reasons, "; "))
}

// TaskRemovedError: the task was cleaned up and forgotten while it was waited for.
type TaskRemovedError struct {
	TaskID  string
	Awaited agentv1.TaskStatus
}

func (e *TaskRemovedError) Error() string {
	return fmt.Sprintf("task %s was removed from the agent before it was %s", e.TaskID, e.Awaited)
}

// reached says whether a task whose known status is known has got to awaited: statuses only move
// forward, and STOPPED ends every wait.
func reached(known, awaited agentv1.TaskStatus) bool {
	if awaited == agentv1.TaskStatus_TASK_STATUS_STOPPED {
		return known == agentv1.TaskStatus_TASK_STATUS_STOPPED
	}
	return known != agentv1.TaskStatus_TASK_STATUS_STOPPED && known >= awaited
}

// WaitForTask follows the task's events (a snapshot first, resuming across reconnects) until its
// known status gets to awaited (or past it, short of STOPPED), and returns the task as GetTask
// gives it then. It fails with *TaskStoppedError when the task stops instead, *TaskRemovedError
// when it is cleaned up meanwhile, NotFound when the agent does not have it, and ctx's error when
// ctx ends first (give it a deadline).
func (c *Client) WaitForTask(ctx context.Context, taskID string, awaited agentv1.TaskStatus) (*agentv1.Task, error) {
	watchCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	watch := c.Watch(watchCtx, WatchOptions{TaskIDs: []string{taskID}, Snapshot: true})
	seen := false
	var known agentv1.TaskStatus
	for item := range watch.C {
		switch {
		case item.Snapshot != nil:
			var task *agentv1.Task
			for _, t := range item.Snapshot.Tasks {
				if t.GetDefinition().GetId() == taskID {
					task = t
				}
			}
			if task == nil && !seen {
				return nil, status.Errorf(codes.NotFound, "task %s not found", taskID)
			}
			if task == nil {
				return nil, &TaskRemovedError{TaskID: taskID, Awaited: awaited}
			}
			known, seen = task.GetKnownStatus(), true
		case item.Event.GetRemoved() != nil:
			return nil, &TaskRemovedError{TaskID: taskID, Awaited: awaited}
		case item.Event.GetTask() != nil:
			known = item.Event.GetTask().GetKnownStatus()
		default:
			continue
		}
		if reached(known, awaited) {
			return c.getTask(ctx, taskID)
		}
		if known == agentv1.TaskStatus_TASK_STATUS_STOPPED {
			task, err := c.getTask(ctx, taskID)
			if err != nil {
				return nil, err
			}
			return nil, &TaskStoppedError{Task: task, Awaited: awaited}
		}
	}
	if err := watch.Err(); err != nil {
		return nil, err
	}
	return nil, ctx.Err()
}

// RunAndWait runs the task (idempotent on its id) and waits until it is RUNNING: see WaitForTask.
func (c *Client) RunAndWait(ctx context.Context, definition *agentv1.TaskDefinition) (*agentv1.Task, error) {
	if _, err := c.Tasks.RunTask(ctx, &agentv1.RunTaskRequest{Task: definition}); err != nil {
		return nil, err
	}
	return c.WaitForTask(ctx, definition.GetId(), agentv1.TaskStatus_TASK_STATUS_RUNNING)
}

func (c *Client) getTask(ctx context.Context, taskID string) (*agentv1.Task, error) {
	response, err := c.Tasks.GetTask(ctx, &agentv1.GetTaskRequest{TaskId: taskID})
	if err != nil {
		return nil, err
	}
	return response.GetTask(), nil
}
