package berthclient

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	agentv1 "github.com/berth-dev/berth/gen/go/berth/agent/v1"
	"google.golang.org/grpc"
)

// HTTP/2 frame types and the settings read here (RFC 9113, sections 6 and 6.5.2).
const (
	frameHeaders      = 0x1
	frameSettings     = 0x4
	framePing         = 0x6
	frameWindowUpdate = 0x8
	flagAck           = 0x1
	settingWindowSize = 0x4
	clientPreface     = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
)

// frame is the header of one HTTP/2 frame and its payload.
type frame struct {
	kind, flags byte
	stream      uint32
	payload     []byte
}

// eventServer answers WatchEvents with `count` events, then holds the stream open until the client
// goes; GetAgentInfo with an empty answer. Each WatchEvents request goes to `requests` when set.
type eventServer struct {
	agentv1.UnimplementedTaskServiceServer
	count    int
	requests chan<- *agentv1.WatchEventsRequest
}

func (s eventServer) WatchEvents(request *agentv1.WatchEventsRequest, stream agentv1.TaskService_WatchEventsServer) error {
	if s.requests != nil {
		s.requests <- request
	}
	for i := 1; i <= s.count; i++ {
		event := &agentv1.WatchEventsResponse{Kind: &agentv1.WatchEventsResponse_Event{Event: &agentv1.Event{Sequence: uint64(i), TaskId: "t"}}}
		if err := stream.Send(event); err != nil {
			return err
		}
	}
	<-stream.Context().Done()
	return nil
}

func (eventServer) GetAgentInfo(context.Context, *agentv1.GetAgentInfoRequest) (*agentv1.GetAgentInfoResponse, error) {
	return &agentv1.GetAgentInfoResponse{}, nil
}

// serve runs a gRPC server of `service` on a unix socket in dir until the test ends; returns the
// socket's path.
func serve(t *testing.T, dir string, service agentv1.TaskServiceServer) string {
	socket := filepath.Join(dir, "server.sock")
	listener, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	server := grpc.NewServer()
	agentv1.RegisterTaskServiceServer(server, service)
	go func() { _ = server.Serve(listener) }()
	t.Cleanup(server.Stop)
	return socket
}

// relay copies the client's bytes to the server and the server's back, and sends every frame the
// client writes to `frames`, in order.
func relay(t *testing.T, client, server net.Conn, frames chan<- frame) {
	go func() { _, _ = io.Copy(client, server) }()
	go func() {
		defer close(frames)
		reader := io.TeeReader(client, server)
		preface := make([]byte, len(clientPreface))
		if _, err := io.ReadFull(reader, preface); err != nil || string(preface) != clientPreface {
			t.Errorf("the client's preface: %q, %v", preface, err)
			return
		}
		header := make([]byte, 9)
		for {
			if _, err := io.ReadFull(reader, header); err != nil {
				return
			}
			length := uint32(header[0])<<16 | uint32(header[1])<<8 | uint32(header[2])
			payload := make([]byte, length)
			if _, err := io.ReadFull(reader, payload); err != nil {
				return
			}
			frames <- frame{kind: header[3], flags: header[4], stream: binary.BigEndian.Uint32(header[5:9]) & 0x7fffffff, payload: payload}
		}
	}()
}

// The client grants the agent fixed windows (a stream's holds the largest message, 4 MiB; the
// connection's 16 MiB), and the data frames of a stream of events draw no PING from it: grpc-go's
// estimate of the bandwidth-delay product, on by default, would answer them with PINGs.
func TestDialGrantsFixedWindowsAndSendsNoPingForData(t *testing.T) {
	dir := t.TempDir()
	serverSocket, clientSocket := serve(t, dir, eventServer{count: 50}), filepath.Join(dir, "client.sock")
	clientListener, err := net.Listen("unix", clientSocket)
	if err != nil {
		t.Fatal(err)
	}
	defer clientListener.Close()
	frames := make(chan frame, 1024)
	go func() {
		conn, err := clientListener.Accept()
		if err != nil {
			return
		}
		upstream, err := net.Dial("unix", serverSocket)
		if err != nil {
			t.Errorf("dial the server: %v", err)
			conn.Close()
			return
		}
		relay(t, conn, upstream, frames)
	}()

	client, err := Dial(Options{Address: clientSocket})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := client.Tasks.WatchEvents(ctx, &agentv1.WatchEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 50; i++ {
		message, err := stream.Recv()
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if got := message.GetEvent().GetSequence(); got != uint64(i) {
			t.Fatalf("event %d came as %d", i, got)
		}
	}
	// A PING for the events' data frames is queued as the client reads them, so before this call's
	// HEADERS frame: the frames up to it hold every PING those data frames drew.
	if _, err := client.Tasks.GetAgentInfo(ctx, &agentv1.GetAgentInfoRequest{}); err != nil {
		t.Fatal(err)
	}

	var streamWindow, connectionIncrement uint32
	pings := 0
	for f := range frames {
		switch {
		case f.kind == frameSettings && f.flags&flagAck == 0:
			for i := 0; i+6 <= len(f.payload); i += 6 {
				if binary.BigEndian.Uint16(f.payload[i:]) == settingWindowSize {
					streamWindow = binary.BigEndian.Uint32(f.payload[i+2:])
				}
			}
		case f.kind == frameWindowUpdate && f.stream == 0 && connectionIncrement == 0:
			connectionIncrement = binary.BigEndian.Uint32(f.payload) & 0x7fffffff
		case f.kind == framePing && f.flags&flagAck == 0:
			pings++
		}
		if f.kind == frameHeaders && f.stream == 3 {
			break
		}
	}
	if streamWindow != streamWindowBytes {
		t.Errorf("the stream window the client granted: %d bytes, want %d", streamWindow, streamWindowBytes)
	}
	if connectionIncrement != connectionWindowBytes-65535 {
		t.Errorf("the client's first connection window update: %d bytes, want %d (a window of %d)", connectionIncrement, connectionWindowBytes-65535, connectionWindowBytes)
	}
	if pings != 0 {
		t.Errorf("the client sent %d PINGs while events arrived, want none", pings)
	}
}
