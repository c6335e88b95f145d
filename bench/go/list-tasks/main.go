// Command list-tasks is the density benchmark's Go control plane: a new process that connects to
// the agent with berthclient, asks GetAgentInfo once (so that the connection is up), then lists
// every task in pages of PAGE_SIZE ROUNDS times, decoding each answer whole with the generated Go
// code. It prints one line of JSON: the tasks the first listing returned, and how long each listing
// took, the first (a new process's first decoding of Task messages) apart.
//
// Usage: list-tasks SOCKET PAGE_SIZE ROUNDS
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"time"

	agentv1 "github.com/berth-dev/berth/gen/go/berth/agent/v1"
	"github.com/berth-dev/berth/gen/go/berthclient"
)

// result is the line printed for bench/density.ts.
type result struct {
	Tasks   int       `json:"tasks"`
	FirstMs float64   `json:"firstMs"`
	Ms      []float64 `json:"ms"`
}

// listAll lists every task, page by page, and says how many there were.
func listAll(ctx context.Context, client *berthclient.Client, pageSize int) (int, error) {
	count, token := 0, ""
	for {
		page, err := client.Tasks.ListTasks(ctx, &agentv1.ListTasksRequest{PageSize: int32(pageSize), PageToken: token})
		if err != nil {
			return count, err
		}
		count += len(page.GetTasks())
		token = page.GetNextPageToken()
		if token == "" {
			return count, nil
		}
	}
}

// timedListing lists every task and says how many there were and how long it took.
func timedListing(ctx context.Context, client *berthclient.Client, pageSize int) (int, float64) {
	started := time.Now()
	count, err := listAll(ctx, client, pageSize)
	if err != nil {
		fail("ListTasks: " + err.Error())
	}
	return count, float64(time.Since(started).Microseconds()) / 1000
}

func fail(message string) {
	fmt.Fprintln(os.Stderr, message)
	os.Exit(1)
}

// countArg is the whole number above 0 in argument i.
func countArg(i int, name string) int {
	n, err := strconv.Atoi(os.Args[i])
	if err != nil || n < 1 {
		fail(name + ": not a count above 0: " + os.Args[i])
	}
	return n
}

func main() {
	if len(os.Args) != 4 {
		fail("usage: list-tasks SOCKET PAGE_SIZE ROUNDS")
	}
	pageSize, rounds := countArg(2, "PAGE_SIZE"), countArg(3, "ROUNDS")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	client, err := berthclient.Dial(berthclient.Options{Address: os.Args[1]})
	if err != nil {
		fail("dial: " + err.Error())
	}
	defer client.Close()
	if _, err := client.Tasks.GetAgentInfo(ctx, &agentv1.GetAgentInfoRequest{}); err != nil {
		fail("GetAgentInfo: " + err.Error())
	}
	out := result{Ms: []float64{}}
	out.Tasks, out.FirstMs = timedListing(ctx, client, pageSize)
	for i := 0; i < rounds; i++ {
		_, ms := timedListing(ctx, client, pageSize)
		out.Ms = append(out.Ms, ms)
	}
	line, _ := json.Marshal(out)
	fmt.Println(string(line))
}
